"""GPU checks and benchmark: the GPU path's fixes on a real GPU, then the decoding speed of every sampling engine on a
7B-shaped Llama, against the weight-bandwidth bound.

First the checks (a minute; each one records its figures and `ok`, and one failing does not stop the others):
- planner: after a large tensor is freed, `free_memory` (driver free + PyTorch's reserved-but-unallocated) is what it
  was before, while the driver's figure alone has dropped (the batch planner's input);
- nonfinite: inf and NaN logits on the GPU stop the sampler with `NonFiniteLogits`; a SmolLM2 whose final norm is NaN
  stops `hf` and `hf-cb` runs with it, writing nothing;
- sampler: the seeded sampler against softmax + multinomial on the GPU (ms per step, 256 rows x 152k), and the same
  draws on the GPU as on the CPU for the same float32 logits (counter-based random numbers);
- batch_independence: SmolLM2 in bf16 and nf4 through `hf` and `hf-cb`, 4 queries x 4 samples alone and batched: how
  many responses agree (the manifest says `batch_independent: false` on CUDA: this measures how often it bites);
- dtype and quantize: `compute_dtype` on this GPU; `quantize='auto'` for vLLM on the 7B-shaped model (16 bits fit: no
  bitsandbytes); vLLM's worker environment for LOCAL_RANK=0 (CUDA_VISIBLE_DEVICES of one GPU);
- hf_cb_version: `check_hf_cb` accepts the installed transformers.

The model has Llama-2-7B's shape (32 layers, width 4096, MLP 11008; the vocabulary of SmolLM2's tokenizer, 49,152,
whose tokenizer is saved beside it so that every engine can load the folder) and random weights built on the GPU,
so nothing is downloaded. It is saved once to a temporary folder and loaded through the project's own paths:
- `hf` (static batches, `llmroute.models.load_model` + `generate`), nf4 and bf16: fixed-length greedy outputs; the
  decode time (total minus a prefill-only call) gives tokens per second;
- `hf-cb` (`llmroute.engine_hfcb.HFCBEngine`, continuous batching, paged attention), nf4 and bf16: `batch` requests of
  `tokens` new tokens each (no end-of-sequence token, so every request runs to the cap), tokens per second over the
  whole run (prefill of the short prompts included);
- `vllm` (`llmroute.engine_vllm.VLLMEngine`, in its own environment: set LLMROUTE_VLLM_PYTHON, see tools/vllm_env.sh),
  bf16 and bitsandbytes nf4, the same requests, timed from the engine's ready signal.
The bound: a decoding step reads every weight once (the embedding table excepted: a lookup reads one row), so
steps/s <= HBM bandwidth / weight bytes, and tokens/s <= batch * that. The script prints the bound for the card's
nominal bandwidth and for the bandwidth of a large device-to-device copy it measures.
Run once, not a test:   python bench/gpu_sampling.py [--checks-only] [--batch 1 16 64] [--tokens 128] [--layers 32] [--engines hf hf-cb vllm]
Without CUDA it says so and exits with status 0.
"""
import argparse, gc, json, os, sys, tempfile, time
from pathlib import Path
import torch

NOMINAL_GBS = {'H200': 4800, 'H100 SXM': 3350, 'H100 80GB HBM3': 3350, 'H100 PCIe': 2000, 'H100 NVL': 3900,
               'A100-SXM4-80GB': 2039, 'A100 80GB PCIe': 1935, 'A100-SXM4-40GB': 1555, 'A100-PCIE-40GB': 1555,
               'L40S': 864, 'A10G': 600, 'L4': 300, 'T4': 320}

def nominal_bandwidth(name:str):
    "Nominal HBM bandwidth (GB/s) of a card from its name, or None"
    for k, v in sorted(NOMINAL_GBS.items(), key=lambda kv: -len(kv[0])):
        if k.lower() in name.lower(): return v
    return None

def copy_bandwidth(gib:float=4.0)->float:
    "Measured device bandwidth (GB/s): bytes read + written by a large device-to-device copy"
    x = torch.empty(int(gib*2**30), dtype=torch.uint8, device='cuda'); y = torch.empty_like(x)
    y.copy_(x); torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(10): y.copy_(x)
    torch.cuda.synchronize(); dt = time.perf_counter() - t
    del x, y; torch.cuda.empty_cache()
    return 2*10*gib*2**30/dt/1e9

def weight_bytes(model)->int:
    "Bytes read per decoding step: all parameters and quantization state except the input embedding table"
    emb = model.get_input_embeddings().weight
    n = sum(p.numel()*p.element_size() for p in model.parameters() if p is not emb)
    for m in model.modules():                     # nf4: absmax / code of each Linear4bit (double-quantized or not)
        qs = getattr(getattr(m, 'weight', None), 'quant_state', None)
        if qs is not None:
            for t in [qs.absmax, qs.code] + ([qs.state2.absmax, qs.state2.code] if getattr(qs, 'state2', None) else []):
                if torch.is_tensor(t): n += t.numel()*t.element_size()
    return n

def timed_generate(model, ids, new_tokens:int)->float:
    "Seconds of one greedy generate call of exactly `new_tokens` tokens"
    torch.cuda.synchronize(); t = time.perf_counter()
    with torch.inference_mode():
        model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=new_tokens,
                       min_new_tokens=new_tokens, do_sample=False, pad_token_id=0)
    torch.cuda.synchronize(); return time.perf_counter() - t

def units_for(b:int, prompt:int, tokens:int, vocab:int):
    "b work units of random prompts, one sample each, no end-of-sequence token (every request runs `tokens` long)"
    from llmroute.engine import WorkUnit
    g = torch.Generator().manual_seed(b)
    return [WorkUnit(f"q{i}", '', torch.randint(3, vocab, (prompt,), generator=g).tolist(), 1, i, tokens, (), ())
            for i in range(b)]

def engine_tokens_per_s(engine, units)->float:
    "Generated tokens per second of one engine run over the units"
    torch.cuda.synchronize(); t = time.perf_counter(); tot = 0; wall = 0.0
    for _, o, lat, _ in engine.run(units, 0.7): tot += sum(o['new_tokens']); wall += lat
    torch.cuda.synchronize()
    return tot / max(wall if engine.name == 'vllm' else time.perf_counter() - t, 1e-9)

def _check(out:dict, name:str, fn):
    "Run one check; keep its figures, or why it failed"
    t = time.perf_counter()
    try: out[name] = fn()
    except Exception as err: out[name] = dict(ok=False, error=f"{type(err).__name__}: {str(err)[:400]}")
    out[name]['seconds'] = round(time.perf_counter() - t, 1)
    print(name, json.dumps(out[name]), flush=True)

def gpu_checks(workdir)->dict:
    "The GPU path's fixes, checked on this GPU (see the module's docstring)"
    import shutil
    from llmroute.engine_hf import free_memory
    from llmroute.engine_hfcb import check_hf_cb
    from llmroute.engine_vllm import VLLMEngine
    from llmroute.models import compute_dtype, dtype_name, load_model, model_spec, process_device, smollm2_dir
    from llmroute.sampler import NonFiniteLogits, seeded_pick
    from llmroute.sampling import read_samples, sample_dataset, shard_file
    dev, out = process_device(), {}

    def planner():
        torch.cuda.empty_cache(); before = free_memory(dev)
        x = torch.empty(8 * 2**30, dtype=torch.uint8, device=dev); del x       # 8 GiB used and freed: PyTorch keeps it
        driver, after = torch.cuda.mem_get_info(dev)[0], free_memory(dev)
        return dict(ok=abs(after - before) < 0.02 * before and driver < before - 4 * 2**30,
                    free_before_gb=round(before/1e9, 1), driver_free_after_gb=round(driver/1e9, 1), free_memory_after_gb=round(after/1e9, 1))
    _check(out, 'planner', planner)

    def nonfinite():
        res = {}
        for bad in ('inf', 'nan'):
            x = torch.randn(4, 1000, device=dev, dtype=torch.float16); x[2, 5] = float(bad)
            try: seeded_pick(x, torch.arange(4), 0.7); res[bad] = 'not stopped'
            except NonFiniteLogits: res[bad] = 'stopped'
        nan_dir = Path(workdir)/'smollm2-nan'
        shutil.copytree(smollm2_dir(), nan_dir, dirs_exist_ok=True)
        m = load_model(str(nan_dir), 'none'); m.model.norm.weight.data.fill_(float('nan')); m.save_pretrained(nan_dir); del m
        for eng in ('hf', 'hf-cb'):
            try:
                sample_dataset('gsm8k', str(nan_dir), Path(workdir)/'nan'/eng, limit=2, n_samples=2, max_new_tokens=8,
                               engine=eng, quantize='none', progress=False)
                res[eng] = 'not stopped'
            except Exception as err: res[eng] = 'stopped' if 'NaN or inf' in str(err) else f"other error: {str(err)[:200]}"
        return dict(ok=all(v == 'stopped' for v in res.values()), **res)
    _check(out, 'nonfinite', nonfinite)

    def sampler():
        g = torch.Generator().manual_seed(0)
        x, keys = 3 * torch.randn(256, 152064, generator=g), torch.arange(256)
        xd, kd = x.to(dev), keys.to(dev)
        def ms(fn, reps=10):
            fn(); torch.cuda.synchronize(); t = time.perf_counter()
            for _ in range(reps): fn()
            torch.cuda.synchronize(); return 1e3 * (time.perf_counter() - t) / reps
        seeded = ms(lambda: seeded_pick(xd, kd, 0.7))
        multi = ms(lambda: torch.multinomial(torch.softmax(xd / 0.7, -1), 1))
        same = int((seeded_pick(xd, kd, 0.7).cpu() == seeded_pick(x, keys, 0.7)).sum())
        return dict(ok=same >= 254, seeded_ms=round(seeded, 2), multinomial_ms=round(multi, 2),
                    seeded_over_multinomial=round(seeded/multi, 2), same_draw_as_cpu=f"{same}/256")
    _check(out, 'sampler', sampler)

    def batch_independence():
        from llmroute.data import load_queries
        res = {}
        for eng in ('hf', 'hf-cb'):
            for q in ('none', '4bit'):
                kw = dict(limit=4, n_samples=4, max_new_tokens=32, engine=eng, quantize=q, progress=False)
                both = sample_dataset('gsm8k', 'smollm2-135m', Path(workdir)/'bi'/eng/q/'all', batch_size=4, **kw)
                one = sample_dataset('gsm8k', 'smollm2-135m', Path(workdir)/'bi'/eng/q/'one', batch_size=1,
                                     **({**kw, 'engine_args': dict(max_requests=1)} if eng == 'hf-cb' else kw))
                resp = lambda r: {x['query_id']: x['responses'] for x in read_samples(r/shard_file('0/1'))}
                a, b = resp(both), resp(one)
                man = json.loads((both/'manifest.json').read_text())['config']
                res[f"{eng}/{'nf4' if q == '4bit' else man['dtype']}"] = dict(
                    equal=f"{sum(x == y for k in a for x, y in zip(a[k], b[k]))}/16", batch_independent=man['batch_independent'])
        return dict(ok=all(v['batch_independent'] is False for v in res.values()), **res)
    _check(out, 'batch_independence', batch_independence)

    def dtype_and_quantize():
        from transformers import LlamaConfig
        d = Path(workdir)/'llama7b-config'; d.mkdir(exist_ok=True)
        LlamaConfig(hidden_size=4096, intermediate_size=11008, num_hidden_layers=32, num_attention_heads=32).save_pretrained(d)
        py = os.environ.get('LLMROUTE_VLLM_PYTHON') or sys.executable          # nothing is started here
        e = VLLMEngine(model_spec(str(d)), 'auto', python=py)
        env = e.worker_env({'LOCAL_RANK': '0'})
        dt = dtype_name(compute_dtype(dev))
        return dict(ok=e.quantize == 'none' and env.get('CUDA_VISIBLE_DEVICES') is not None and dt in ('bfloat16', 'float16'),
                    compute_dtype=dt, vllm_auto_quantize_7b=e.quantize, vllm_worker_cuda_visible_devices=env.get('CUDA_VISIBLE_DEVICES'))
    _check(out, 'dtype_and_quantize', dtype_and_quantize)

    def hf_cb_version():
        import transformers
        check_hf_cb(); return dict(ok=True, transformers=transformers.__version__)
    _check(out, 'hf_cb_version', hf_cb_version)
    out['all_ok'] = all(v.get('ok') for v in out.values() if isinstance(v, dict))
    return out

def bounds(b, wb, res):
    return {k: round(b*gbs*1e9/wb, 1) for k, gbs in (('nominal', res['nominal_gbs']), ('copy', res['copy_gbs'])) if gbs}

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--batch', type=int, nargs='+', default=[1, 16, 64])
    ap.add_argument('--tokens', type=int, default=128, help='new tokens per sequence (forced)')
    ap.add_argument('--prompt', type=int, default=64, help='prompt length in tokens')
    ap.add_argument('--layers', type=int, default=32, help='fewer for a quick check')
    ap.add_argument('--arms', nargs='+', default=['4bit', 'none'], choices=['4bit', 'none'])
    ap.add_argument('--engines', nargs='+', default=['hf', 'hf-cb', 'vllm'], choices=['hf', 'hf-cb', 'vllm'])
    ap.add_argument('--checks-only', action='store_true', help='only the checks of the GPU path (about a minute)')
    ap.add_argument('--json', default=None, help='also write the figures to this file')
    a = ap.parse_args()
    if not torch.cuda.is_available():
        print("gpu_sampling: no CUDA device here; this benchmark needs a GPU (nothing was measured)."); return 0
    def save(res):
        if a.json:
            with open(a.json, 'w') as f: f.write(json.dumps(res, indent=1) + '\n')
    with tempfile.TemporaryDirectory() as w: checks = gpu_checks(w)
    save(dict(checks=checks))
    if a.checks_only:
        print(json.dumps(dict(checks=checks), indent=1)); return 0 if checks['all_ok'] else 1
    from transformers import LlamaConfig, LlamaForCausalLM
    from llmroute.engine import make_engine
    from llmroute.models import load_model, load_tokenizer, model_spec, compute_dtype
    name = torch.cuda.get_device_name(0)
    tok = load_tokenizer('smollm2-135m')
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=4096, intermediate_size=11008, num_hidden_layers=a.layers,
                      num_attention_heads=32, num_key_value_heads=32, max_position_embeddings=4096,
                      bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    res = dict(checks=checks, device=name, torch=torch.__version__, layers=a.layers, prompt=a.prompt, new_tokens=a.tokens,
               nominal_gbs=nominal_bandwidth(name), copy_gbs=round(copy_bandwidth(), 1), dtype=str(compute_dtype('cuda')), engines={})
    with tempfile.TemporaryDirectory() as d:
        torch.manual_seed(0)
        t = time.perf_counter()
        with torch.device('cuda'): m = LlamaForCausalLM(cfg).to(compute_dtype('cuda'))
        m.save_pretrained(d); tok.save_pretrained(d); del m; gc.collect(); torch.cuda.empty_cache()
        res['build_s'] = round(time.perf_counter() - t, 1)
        spec = model_spec(d)
        for eng in a.engines:
            if eng == 'vllm' and not os.environ.get('LLMROUTE_VLLM_PYTHON'):
                res['engines']['vllm'] = 'skipped: set LLMROUTE_VLLM_PYTHON (tools/vllm_env.sh with VLLM_PACKAGE=vllm)'; continue
            for arm in a.arms:
                key = f"{eng}/{'nf4' if arm == '4bit' else 'bf16'}"
                try:
                    out = dict(batches={})
                    if eng == 'hf':
                        t = time.perf_counter(); model = load_model(d, quantize=arm); out['load_s'] = round(time.perf_counter() - t, 1)
                        wb = weight_bytes(model); out['weight_gb'] = round(wb/1e9, 3)
                        for b in a.batch:
                            ids = torch.randint(3, cfg.vocab_size, (b, a.prompt), device='cuda', generator=torch.Generator('cuda').manual_seed(b))
                            timed_generate(model, ids, 2)                                   # warm-up
                            total, prefill = timed_generate(model, ids, a.tokens), timed_generate(model, ids, 1)
                            steps_s = (a.tokens - 1)/max(total - prefill, 1e-9)
                            bd = bounds(b, wb, res)
                            out['batches'][b] = dict(tokens_per_s=round(b*steps_s, 1), ms_per_step=round(1e3/steps_s, 2), bound_tokens_per_s=bd,
                                                     fraction_of_copy_bound=round(b*steps_s/bd['copy'], 3),
                                                     peak_mem_gb=round(torch.cuda.max_memory_allocated()/1e9, 2))
                        del model
                    else:
                        e = make_engine(eng, spec, arm, **(dict(gpu_memory_utilization=0.8) if eng == 'vllm' else {}))
                        if eng == 'hf-cb':
                            e.load(); wb = weight_bytes(e.model); out['weight_gb'] = round(wb/1e9, 3)
                        else:
                            probe = load_model(d, quantize=arm); wb = weight_bytes(probe); del probe; gc.collect(); torch.cuda.empty_cache()
                        engine_tokens_per_s(e, units_for(1, a.prompt, 4, cfg.vocab_size))       # warm-up (vllm: a start)
                        for b in a.batch:
                            tps = engine_tokens_per_s(e, units_for(b, a.prompt, a.tokens, cfg.vocab_size))
                            bd = bounds(b, wb, res)
                            out['batches'][b] = dict(tokens_per_s=round(tps, 1), bound_tokens_per_s=bd,
                                                     fraction_of_copy_bound=round(tps/bd['copy'], 3),
                                                     peak_mem_gb=round(torch.cuda.max_memory_allocated()/1e9, 2))
                        del e
                    res['engines'][key] = out
                except Exception as err:                                                    # one arm failing does not lose the others
                    res['engines'][key] = f"failed: {type(err).__name__}: {str(err)[:300]}"
                gc.collect(); torch.cuda.empty_cache(); torch.cuda.reset_peak_memory_stats()
    print(json.dumps(res, indent=1))
    save(res)
    return 0 if checks['all_ok'] else 1

if __name__ == '__main__': sys.exit(main())
