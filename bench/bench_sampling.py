"""CPU benchmark: batched generation vs one query at a time, with SmolLM2-135M-Instruct.

Both arms generate exactly the same number of tokens (min_new_tokens = max_new_tokens, one sample per query),
through `llmroute.sampling.generate_batch`, so tokens per second compare like with like. Run once, not a test:
    python bench/bench_sampling.py [--queries 8] [--tokens 32] [--threads N] [--quantize none|4bit]
"""
import argparse, json, platform, time
import torch
from llmroute.data import load_queries
from llmroute.prompts import build_prompt
from llmroute.sampling import load_model, load_tokenizer, generate_batch, query_seed

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--model', default='smollm2-135m')
    ap.add_argument('--queries', type=int, default=8, help='GSM8K test questions')
    ap.add_argument('--tokens', type=int, default=32, help='new tokens per response (forced)')
    ap.add_argument('--threads', type=int, default=None, help='torch CPU threads (default: torch decides)')
    ap.add_argument('--quantize', default='none', choices=['none', '4bit'])
    a = ap.parse_args()
    if a.threads: torch.set_num_threads(a.threads)
    tok, lm = load_tokenizer(a.model), load_model(a.model, a.quantize)
    qs = load_queries('gsm8k', splits='test', limit=a.queries).to_dict('records')
    prompts = [build_prompt(q, 'chat', tok) for q in qs]
    seeds = [query_seed(0, q['query_id']) for q in qs]
    kw = dict(n_samples=1, max_new_tokens=a.tokens, min_new_tokens=a.tokens)
    generate_batch(lm, tok, prompts[:1], seeds[:1], **{**kw, 'max_new_tokens': 2, 'min_new_tokens': 2})  # warm-up
    t = time.perf_counter(); one = [generate_batch(lm, tok, [p], [s], **kw)[0] for p, s in zip(prompts, seeds)]
    t_one = time.perf_counter() - t
    t = time.perf_counter(); bat = generate_batch(lm, tok, prompts, seeds, **kw); t_bat = time.perf_counter() - t
    n_one, n_bat = sum(sum(o['new_tokens']) for o in one), sum(sum(o['new_tokens']) for o in bat)
    assert n_one == n_bat == a.queries*a.tokens, (n_one, n_bat)
    res = dict(model=a.model, quantize=a.quantize, queries=a.queries, tokens_per_query=a.tokens, total_tokens=n_bat,
               threads=torch.get_num_threads(), cpu=platform.processor() or platform.machine(),
               one_at_a_time=dict(seconds=round(t_one, 2), tokens_per_s=round(n_one/t_one, 1)),
               batched=dict(seconds=round(t_bat, 2), tokens_per_s=round(n_bat/t_bat, 1)),
               speedup_batched=round(t_one/t_bat, 2))
    print(json.dumps(res, indent=1))

if __name__ == '__main__': main()
