"""CPU benchmark of the sampling engines `hf` and `hf-cb`, as ratios measured in one run, plus the same ratios
simulated for the paper's 8 x 10 batches on real GSM8K response lengths.

Measured (SmolLM2-135M-Instruct on the CPU, the same GSM8K questions, seeds and prompts for both engines; natural
end of sequence, so response lengths vary as in a real run):
- slot_utilization: useful generated tokens / token slots the engine computed (a static batch computes every row
  until its longest row ends; counted where the sampler draws, so padding rows count as slots);
- prefill_ratio: prompt tokens computed / prompt tokens of the queries (a static batch computes each prompt n
  times, plus padding; continuous batching prefills it once and forks its n samples);
- tokens_per_s: useful generated tokens per second of sampling (model loading excluded). Continuous batching gains
  only where there is more work than slots (here: `--queries` x `--samples` samples over `--batch-size` x `--samples`
  slots for both engines); a decode step costs about the same however many of its slots are busy, so its gain in
  time follows the ratio of slot utilizations.
Simulated (`--lengths`, default the RouteLLM GSM8K responses under $LLMROUTE_DATA_DIR/routellm/): response lengths
in SmolLM2 tokens (+1 for EOS, capped at 750) drawn for 8 queries x 10 samples per batch, few-shot GSM8K prompts;
the static engine's two ratios, and continuous batching's with the same 80 slots. Again with 1% of samples at the cap.
Run once, not a test:
    python bench/bench_sampling.py [--json FILE] [--queries 6] [--samples 4] [--tokens 64] [--threads N]
"""
import argparse, json, os, platform, time
from pathlib import Path
import numpy as np, torch
import llmroute.sampling as S
from llmroute.data import load_queries
from llmroute.prompts import build_prompt

class Counter:
    "Counts the rows the seeded sampler draws for (token slots) and the tokens the model's forward passes compute"
    def __init__(self, model):
        self.slots = self.tokens = self.prefill = 0
        self._pick = S.seeded_pick
        S.seeded_pick = self.pick                                  # both engines draw through this module global
        self.hook = model.register_forward_pre_hook(self.forward, with_kwargs=True)
    def pick(self, scores, keys, temperature):
        self.slots += scores.shape[0]; return self._pick(scores, keys, temperature)
    def forward(self, mod, args, kwargs):
        ids = kwargs.get('input_ids', args[0] if args else None)
        if ids is not None:
            self.tokens += ids.numel()
            if ids.dim() == 2 and ids.shape[1] > 1: self.prefill += ids.numel()   # hf: a batch's prompt pass
    def close(self): S.seeded_pick = self._pick; self.hook.remove()

def measure(engine, units, temperature):
    "Run one engine over the units; return its figures and its responses"
    engine.load()
    c = Counter(engine.model)
    try:
        t = time.perf_counter()
        got = {u.query_id: o for u, o, _, _ in engine.run(units, temperature)}
        wall = time.perf_counter() - t
    finally: c.close()
    lengths = [k for o in got.values() for k in o['new_tokens']]
    useful, unique = sum(lengths), sum(len(u.prompt_ids) for u in units)
    if engine.name == 'hf': prompt_computed = c.prefill                          # the first forward of each batch
    else: prompt_computed = c.tokens - sum(max(k - 1, 0) for k in lengths)      # every other token fed is a fed-back sample token
    return dict(slot_utilization=round(useful/c.slots, 3), prefill_ratio=round(prompt_computed/unique, 3),
                tokens_per_s=round(useful/wall, 1), seconds=round(wall, 2), generated_tokens=useful,
                token_slots=c.slots, prompt_tokens_computed=prompt_computed, unique_prompt_tokens=unique), got

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
    # continuous batching: queries*n slots; a finished sample's slot takes the next sample at once
    free = np.zeros(queries * n)
    for k in L.ravel():
        i = free.argmin(); free[i] += k
    cb = dict(slot_utilization=round(L.sum()/(free.size*free.max()), 3), prefill_ratio=round((P - 1 + n).sum()/P.sum(), 3))
    return static, cb

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--model', default='smollm2-135m')
    ap.add_argument('--queries', type=int, default=6, help='GSM8K test questions (measured part)')
    ap.add_argument('--samples', type=int, default=4, help='responses per question (measured part)')
    ap.add_argument('--tokens', type=int, default=64, help='most new tokens per response (measured part)')
    ap.add_argument('--batch-size', type=int, default=3, help='hf: queries per static batch')
    ap.add_argument('--threads', type=int, default=None, help='torch CPU threads (default: torch decides)')
    ap.add_argument('--lengths', default=None, help='CSV of real responses (default $LLMROUTE_DATA_DIR/routellm/gsm8k_responses.csv)')
    ap.add_argument('--json', default=None, help='also write the figures to this file')
    a = ap.parse_args()
    if a.threads: torch.set_num_threads(a.threads)
    spec = S.model_spec(a.model)
    tok = S.load_tokenizer(spec)
    qs = load_queries('gsm8k', splits='test', limit=a.queries).to_dict('records')
    prompts = {q['query_id']: build_prompt(q, 'chat', tok) for q in qs}
    eos = S.eos_token_ids(tok, S._generation_config(spec), spec.stop_tokens)
    units = S.plan_units(qs, prompts, tok, 0, a.samples, a.tokens, (), eos)
    engines = {'hf': S.HFEngine(spec, 'none', batch_size=a.batch_size),
               'hf-cb': S.HFCBEngine(spec, 'none', num_blocks=256, max_batch_tokens=512, page_size=32,
                                     max_requests=a.batch_size*a.samples)}      # as many rows at once as a static batch
    res, outs = {}, {}
    for name, eng in engines.items():
        res[name], outs[name] = measure(eng, units, 0.7)
        eng.model = None                                                         # free it before the next engine loads
    agree = sum(x == y for q in outs['hf'] for x, y in zip(outs['hf'][q]['responses'], outs['hf-cb'][q]['responses']))
    # the simulation on real GSM8K lengths, with few-shot prompts (the paper's base-model prompts, ~1,900 tokens in Llama's)
    path = Path(a.lengths) if a.lengths else Path(os.environ.get('LLMROUTE_DATA_DIR', '../shared/data'))/'routellm'/'gsm8k_responses.csv'
    sim = None
    if path.exists():
        lengths = gsm8k_lengths(path, tok, 750)
        allq = load_queries('gsm8k', splits='test').to_dict('records')
        plens = [len(x) for x in tok([build_prompt(q, 'fewshot') for q in allq], add_special_tokens=False)['input_ids']]
        (st, cb), (st1, cb1) = simulate(lengths, plens), simulate(lengths, plens, at_cap=0.01)
        sim = dict(source=str(path), responses=int(len(lengths)), mean_length=round(float(lengths.mean()), 1),
                   queries=len(plens), mean_prompt_tokens=round(float(np.mean(plens)), 1))
        res['hf']['simulated_gsm8k_8x10'] = {**st, 'slot_utilization_1pct_at_cap': st1['slot_utilization']}
        res['hf-cb']['simulated_gsm8k_8x10'] = {**cb, 'slot_utilization_1pct_at_cap': cb1['slot_utilization']}
    out = dict(engines=res, model=a.model, queries=a.queries, samples=a.samples, max_new_tokens=a.tokens,
               batch_size_hf=a.batch_size, threads=torch.get_num_threads(), cpu=platform.processor() or platform.machine(),
               cpus=os.cpu_count(), responses_equal_across_engines=f"{agree}/{a.queries*a.samples}",
               ratios=dict(tokens_per_s_hf_cb_over_hf=round(res['hf-cb']['tokens_per_s']/res['hf']['tokens_per_s'], 2),
                           slot_utilization_hf_cb_over_hf=round(res['hf-cb']['slot_utilization']/res['hf']['slot_utilization'], 2),
                           prefill_ratio_hf_over_hf_cb=round(res['hf']['prefill_ratio']/res['hf-cb']['prefill_ratio'], 2)),
               simulation=sim)
    if sim:   # decode steps are weight-bandwidth bound on a GPU (and on this CPU): time follows steps x slots / useful tokens
        out['ratios']['decode_steps_hf_over_hf_cb_simulated_8x10'] = round(
            res['hf-cb']['simulated_gsm8k_8x10']['slot_utilization'] / res['hf']['simulated_gsm8k_8x10']['slot_utilization'], 2)
    print(json.dumps(out, indent=1))
    if a.json: Path(a.json).write_text(json.dumps(out, indent=1) + '\n')

if __name__ == '__main__': main()
