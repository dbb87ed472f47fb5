"Answer extraction against the labels RouteLLM published with its real GSM8K responses (see nbs/04_labeling.ipynb)"
import re
import pytest
import pandas as pd
from llmroute.core import data_dir
from llmroute.labeling import extract_answer, is_correct, paper_extract_answer

MODELS = ['mistralai/Mixtral-8x7B-Instruct-v0.1', 'gpt-4-1106-preview']


@pytest.fixture(scope='module')
def responses():
    d = data_dir()
    if d is None or not (d/'routellm'/'gsm8k_responses.csv').exists(): pytest.skip("no local routellm/gsm8k_responses.csv")
    from llmroute.data import load_queries
    gold = dict(zip(*load_queries('gsm8k', splits=['test'])[['question', 'gold']].T.values))
    df = pd.read_csv(d/'routellm'/'gsm8k_responses.csv')
    df['gold'] = df['prompt'].map(gold)
    assert df['gold'].notna().all()
    return df


def _fixed(text, gold):
    "RouteLLM's own rule (last digit run, commas removed, unsigned) reading whole decimals instead of their last digits"
    nums = re.findall(r"\d+(?:\.\d+)?", str(text).replace(',', ''))
    return bool(nums) and is_correct(nums[-1], str(gold).lstrip('-'), 'gsm8k')


@pytest.mark.parametrize('model', MODELS)
def test_agreement(responses, model):
    resp, gold, src = responses[model+'_response'], responses['gold'], responses[model].astype(bool)
    ours = pd.Series([is_correct(extract_answer(r, 'gsm8k'), g, 'gsm8k') for r, g in zip(resp, gold)])
    fixed = pd.Series([_fixed(r, g) for r, g in zip(resp, gold)])
    assert (ours == fixed).mean() >= 0.98
    assert (ours == src).mean() >= (0.98 if 'Mixtral' in model else 0.96)
    paper = pd.Series([is_correct(paper_extract_answer(r, 'gsm8k'), g, 'gsm8k') for r, g in zip(resp, gold)])
    assert ours.mean() >= paper.mean()
