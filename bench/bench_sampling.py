"""CPU benchmark of sampling, as ratios measured in one run: the seeded sampler, the dtype, and the engines on real
GSM8K prompts at a realistic token cap.

1. The seeded sampler (`llmroute.sampler.seeded_pick`) against `softmax` + `torch.multinomial` on the same logits,
   before (its first form, the exponential race in float64, whose code is kept in this file for the comparison) and
   after (inverse CDF, one uniform per row): milliseconds per step and each over multinomial, at the vocabularies of
   Qwen2.5 (152k) with 40 rows, Gemma (262k) with 40 rows and SmolLM2 (49k) with 10 rows.
2. The dtype on this CPU: SmolLM2-135M decoding a batch in float32 and in `compute_dtype('cpu')` (bf16 where the CPU
   has native bf16), tokens per second and their ratio.
3. The engines on SmolLM2-135M-Instruct, the same real GSM8K test questions, chat prompts and seeds, natural end of
   sequence at a realistic cap (`--tokens`, default 256, above 9 in 10 real GSM8K answers: part 4 says how many):
   - `hf (before)`: static batches in float32 with the old sampler (what the CPU path did before);
   - `hf`: static batches with today's dtype and sampler;
   - `hf-cb`: continuous batching with as many rows at once as a static batch.
   For each: slot_utilization (useful generated tokens / token slots the engine computed; a static batch computes
   every row until its longest row ends), prefill_ratio (prompt tokens computed / prompt tokens of the queries; a
   static batch computes each prompt n times plus padding, continuous batching once and forks its n samples) and
   tokens_per_s (useful tokens per second of sampling, model loading excluded); then the ratios between engines.
4. The paper's 8 queries x 10 samples simulated on real GSM8K response lengths (RouteLLM's responses under
   $LLMROUTE_DATA_DIR/routellm/, in SmolLM2 tokens, +1 for EOS, capped at 750) with few-shot prompts: both engines'
   slot utilization and prefill ratio, and again with 1% of samples at the cap.
Run once, not a test (about 8 minutes on a 2-core CPU with one thread):
    python bench/bench_sampling.py [--json FILE] [--queries 6] [--samples 2] [--tokens 256] [--threads N] [--skip-engines]
"""
import argparse, json, os, platform, time
from pathlib import Path
import numpy as np, torch
import llmroute.engine_hfcb, llmroute.sampler
from llmroute.engine_hf import HFEngine, generate_batch
from llmroute.engine_hfcb import HFCBEngine
from llmroute.models import (compute_dtype, cpu_has_bf16, dtype_name, eos_token_ids, generation_config, load_model,
                             load_tokenizer, model_spec)
from llmroute.sampler import _GOLDEN, _i64, _mix, seeded_pick
from llmroute.sampling import plan_units
from llmroute.data import load_queries
from llmroute.prompts import build_prompt

def race_pick_v2(scores, keys, temperature):
    "The seeded sampler before: an exponential race in float64 over a splitmix64 hash of every (row, token)"
    if temperature == 0: return scores.argmax(-1)
    v = torch.arange(scores.shape[-1], device=scores.device, dtype=torch.int64)
    keys = keys.to(device=scores.device, dtype=torch.int64)
    out, rows = [], max(1, (1 << 24) // scores.shape[-1])
    for i in range(0, scores.shape[0], rows):
        h = _mix(keys[i:i+rows, None] * _i64(_GOLDEN) + v)
        u = ((h >> 11) & ((1 << 53) - 1)).to(torch.float64) * 2.0**-53
        out.append((scores[i:i+rows].double()/temperature - torch.log(-torch.log1p(-u))).argmax(-1))
    return torch.cat(out) if out else scores.new_zeros(0, dtype=torch.int64)

def multinomial_pick(scores, keys, temperature):
    "The reference: softmax and one multinomial draw per row from torch's global generator"
    return torch.multinomial(torch.softmax(scores / temperature, -1), 1)[:, 0]

def best_ms(fn, reps:int)->float:
    fn(); best = float('inf')
    for _ in range(reps):
        t = time.perf_counter(); fn(); best = min(best, time.perf_counter() - t)
    return 1e3 * best

def bench_sampler(shapes=((40, 152064), (40, 262144), (10, 49152)), temperature=0.7, reps=3):
    "ms per step of the three samplers on random logits of each shape, and the ratios to multinomial"
    rows = []
    for r, v in shapes:
        g = torch.Generator().manual_seed(0)
        x, keys = 3 * torch.randn(r, v, generator=g), torch.arange(r)
        ms = {name: best_ms(lambda f=f: f(x, keys, temperature), 1 if name == 'before' else reps)
              for name, f in (('multinomial', multinomial_pick), ('before', race_pick_v2), ('after', seeded_pick))}
        rows.append(dict(rows=r, vocab=v, **{f"{k}_ms": round(t, 1) for k, t in ms.items()},
                         before_over_multinomial=round(ms['before']/ms['multinomial'], 2),
                         after_over_multinomial=round(ms['after']/ms['multinomial'], 2),
                         before_over_after=round(ms['before']/ms['after'], 1)))
    return rows

def bench_dtype(spec, tok, prompts, tokens=32):
    "Decoding tokens/s of SmolLM2 in float32 and in the CPU's own dtype, on one static batch"
    out = {}
    for name in ('float32', dtype_name(compute_dtype('cpu'))):
        if name in out: continue
        m = load_model(spec, 'none', dtype=name)
        generate_batch(m, tok, prompts[:1], [0], n_samples=1, max_new_tokens=2)            # warm-up
        t = time.perf_counter()
        generate_batch(m, tok, prompts, list(range(len(prompts))), n_samples=1, max_new_tokens=tokens, min_new_tokens=tokens)
        out[name] = round(len(prompts) * tokens / (time.perf_counter() - t), 1)
        del m
    return dict(batch=len(prompts), new_tokens=tokens, tokens_per_s=out,
                ratio_over_float32={k: round(v/out['float32'], 2) for k, v in out.items()})

_DRAWS = (llmroute.sampler, llmroute.engine_hfcb)  # the modules whose global `seeded_pick` the engines call

class Counter:
    "Counts the rows the seeded sampler draws for (token slots) and the tokens the model's forward passes compute"
    def __init__(self, model, pick=None):
        self.slots = self.tokens = self.prefill = 0
        self._use = pick or seeded_pick
        for m in _DRAWS: m.seeded_pick = self.pick                 # hf draws through the sampler's, hf-cb its own
        self.hook = model.register_forward_pre_hook(self.forward, with_kwargs=True)
    def pick(self, scores, keys, temperature):
        self.slots += scores.shape[0]; return self._use(scores, keys, temperature)
    def forward(self, mod, args, kwargs):
        ids = kwargs.get('input_ids', args[0] if args else None)
        if ids is not None:
            self.tokens += ids.numel()
            if ids.dim() == 2 and ids.shape[1] > 1: self.prefill += ids.numel()   # hf: a batch's prompt pass
    def close(self):
        for m in _DRAWS: m.seeded_pick = seeded_pick
        self.hook.remove()

def measure(engine, units, temperature, pick=None):
    "Run one engine over the units; return its figures and its responses"
    engine.load()
    c = Counter(engine.model, pick)
    try:
        t = time.perf_counter()
        got = {u.query_id: o for u, o, _, _ in engine.run(units, temperature)}
        wall = time.perf_counter() - t
    finally: c.close()
    lengths = [k for o in got.values() for k in o['new_tokens']]
    useful, unique = sum(lengths), sum(len(u.prompt_ids) for u in units)
    if engine.name == 'hf': prompt_computed = c.prefill                          # the first forward of each batch
    else: prompt_computed = c.tokens - sum(max(k - 1, 0) for k in lengths)      # every other token fed is a fed-back sample token
    cap = units[0].max_new_tokens
    return dict(dtype=dtype_name(engine.dtype), slot_utilization=round(useful/c.slots, 3),
                prefill_ratio=round(prompt_computed/unique, 3), tokens_per_s=round(useful/wall, 1), seconds=round(wall, 1),
                generated_tokens=useful, mean_length=round(float(np.mean(lengths)), 1),
                at_cap=f"{sum(k >= cap for k in lengths)}/{len(lengths)}", token_slots=c.slots,
                prompt_tokens_computed=prompt_computed, unique_prompt_tokens=unique), got

def bench_engines(spec, tok, qs, samples, tokens, batch_size, temperature=0.7):
    "The three engine arms on the same work units"
    prompts = {q['query_id']: build_prompt(q, 'chat', tok) for q in qs}
    eos = eos_token_ids(tok, generation_config(spec), spec.stop_tokens)
    units = plan_units(qs, prompts, tok, 0, samples, tokens, (), eos)
    arms = {'hf (before)': (lambda: HFEngine(spec, 'none', batch_size=batch_size, dtype='float32'), race_pick_v2),
            'hf': (lambda: HFEngine(spec, 'none', batch_size=batch_size), None),
            'hf-cb': (lambda: HFCBEngine(spec, 'none', num_blocks=512, max_batch_tokens=512, page_size=32,
                                           max_requests=batch_size*samples), None)}   # as many rows at once as a static batch
    res = {}
    for name, (make, pick) in arms.items():
        eng = make()
        res[name], _ = measure(eng, units, temperature, pick)
        eng.model = None                                                         # free it before the next engine loads
    r = lambda a, b, k: round(res[a][k]/res[b][k], 2)
    ratios = {'tokens_per_s hf-cb / hf': r('hf-cb', 'hf', 'tokens_per_s'),
              'slot_utilization hf-cb / hf': r('hf-cb', 'hf', 'slot_utilization'),
              'prefill_ratio hf / hf-cb': r('hf', 'hf-cb', 'prefill_ratio'),
              'tokens_per_s hf / hf (before)': r('hf', 'hf (before)', 'tokens_per_s'),
              'tokens_per_s hf-cb / hf (before)': r('hf-cb', 'hf (before)', 'tokens_per_s')}
    return res, ratios

def gsm8k_lengths(path, tok, cap):
    "Token lengths (+1 for EOS, capped) of every response in a RouteLLM-style CSV (columns ending in _response)"
    import pandas as pd
    df = pd.read_csv(path)
    texts = [t for c in df.columns if c.endswith('_response') for t in df[c].dropna().astype(str)]
    return np.minimum(np.array([len(x) + 1 for x in tok(texts, add_special_tokens=False)['input_ids']]), cap)

def simulate(lengths, prompt_lens, queries=8, n=10, cap=750, seed=0, at_cap=0.0):
    "The two ratios for static batches of queries x n rows and for continuous batching with as many slots"
    rng = np.random.default_rng(seed)
    L = rng.choice(lengths, size=(len(prompt_lens), n))
    if at_cap: L[rng.random(L.shape) < at_cap] = cap
    order = np.argsort(-np.asarray(prompt_lens))                                  # longest prompt first, as the engines do
    P, L = np.asarray(prompt_lens)[order], L[order]
    useful, slots, pcomp = 0, 0, 0
    for b in range(0, len(P), queries):
        lb, pb = L[b:b+queries], P[b:b+queries]
        useful += lb.sum(); slots += lb.size * lb.max(); pcomp += lb.shape[0] * n * pb.max()
    static = dict(slot_utilization=round(useful/slots, 3), prefill_ratio=round(pcomp/P.sum(), 3))
    free = np.zeros(queries * n)                  # continuous batching: a finished sample's slot takes the next at once
    for k in L.ravel():
        i = free.argmin(); free[i] += k
    cb = dict(slot_utilization=round(L.sum()/(free.size*free.max()), 3), prefill_ratio=round((P - 1 + n).sum()/P.sum(), 3))
    return static, cb

def bench_simulated(tok, path, cap_measured):
    "The paper's 8 x 10 batches simulated on real GSM8K response lengths (RouteLLM's), few-shot prompts; again with 1% at the cap"
    if not path.exists(): return None
    lengths = gsm8k_lengths(path, tok, 750)
    allq = load_queries('gsm8k', splits='test').to_dict('records')
    plens = [len(x) for x in tok([build_prompt(q, 'fewshot') for q in allq], add_special_tokens=False)['input_ids']]
    (st, cb), (st1, cb1) = simulate(lengths, plens), simulate(lengths, plens, at_cap=0.01)
    return dict(source=str(path), responses=int(len(lengths)), mean_length=round(float(lengths.mean()), 1),
                share_within_measured_cap=round(float((lengths <= cap_measured).mean()), 3),
                queries=len(plens), mean_prompt_tokens=round(float(np.mean(plens)), 1),
                hf={**st, 'slot_utilization_1pct_at_cap': st1['slot_utilization']},
                hf_cb={**cb, 'slot_utilization_1pct_at_cap': cb1['slot_utilization']})

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--model', default='smollm2-135m')
    ap.add_argument('--queries', type=int, default=6, help='GSM8K test questions')
    ap.add_argument('--samples', type=int, default=2, help='responses per question')
    ap.add_argument('--tokens', type=int, default=256, help='most new tokens per response')
    ap.add_argument('--batch-size', type=int, default=3, help='hf: queries per static batch')
    ap.add_argument('--threads', type=int, default=None, help='torch CPU threads (default: torch decides)')
    ap.add_argument('--skip-engines', action='store_true', help='only the sampler and dtype parts (a minute)')
    ap.add_argument('--lengths', default=None, help='CSV of real responses (default $LLMROUTE_DATA_DIR/routellm/gsm8k_responses.csv)')
    ap.add_argument('--json', default=None, help='also write the figures to this file')
    a = ap.parse_args()
    if a.threads: torch.set_num_threads(a.threads)
    t0 = time.perf_counter()
    out = dict(cpu=platform.processor() or platform.machine(), cpus=os.cpu_count(), threads=torch.get_num_threads(),
               cpu_bf16=cpu_has_bf16(), sampler=bench_sampler())
    spec = model_spec(a.model)
    tok = load_tokenizer(spec)
    qs = load_queries('gsm8k', splits='test', limit=a.queries).to_dict('records')
    out['dtype'] = bench_dtype(spec, tok, [build_prompt(q, 'chat', tok) for q in qs[:8]])
    data = Path(os.environ.get('LLMROUTE_DATA_DIR') or Path(__file__).resolve().parents[2]/'shared'/'data')
    out['simulated_gsm8k_8x10'] = bench_simulated(tok, Path(a.lengths) if a.lengths else data/'routellm'/'gsm8k_responses.csv', a.tokens)
    if not a.skip_engines:
        out['engines'], out['engine_ratios'] = bench_engines(spec, tok, qs, a.samples, a.tokens, a.batch_size)
        out['engine_setup'] = dict(model=a.model, queries=a.queries, samples=a.samples, max_new_tokens=a.tokens,
                                   batch_size_hf=a.batch_size, prompts='GSM8K test, chat template, natural end of sequence')
    out['seconds'] = round(time.perf_counter() - t0)
    print(json.dumps(out, indent=1))
    if a.json: Path(a.json).write_text(json.dumps(out, indent=1) + '\n')

if __name__ == '__main__': main()
