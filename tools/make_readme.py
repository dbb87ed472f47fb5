"Write README.md from nbs/index.ipynb: run it (execnb, like nbdev_test), drop `#| hide` cells, keep outputs."
import os, re, sys
from pathlib import Path
from execnb.nbio import read_nb
from execnb.shell import CaptureShell

ROOT = Path(__file__).resolve().parents[1]

def directives(src):
    return {m.group(1).strip(): m.group(2).strip() for m in re.finditer(r'^#\|\s*([\w-]+:?)\s*(.*)$', src, re.M)}

def output_md(o):
    d = o.get('data', {})
    if 'text/markdown' in d: return ''.join(d['text/markdown'])
    if 'text/plain' in d and 'text/html' not in d: return '```\n' + ''.join(d['text/plain']).rstrip() + '\n```'
    if 'text/html' in d: return ''.join(d['text/html'])
    if o.get('output_type') == 'stream': return '```\n' + ''.join(o.get('text', '')).rstrip() + '\n```'
    return ''

def main(nb_path=ROOT/'nbs'/'index.ipynb', out=ROOT/'README.md'):
    nb_path, out = Path(nb_path).resolve(), Path(out).resolve()
    nb = read_nb(nb_path)
    os.chdir(nb_path.parent)  # as nbdev_test runs it: paths in the notebook are relative to nbs/
    CaptureShell(nb_path).run_all(nb, exc_stop=True)
    parts = []
    for c in nb.cells:
        d = directives(c.source)
        if 'hide' in d or d.get('include:') == 'false': continue
        if c.cell_type == 'markdown': parts.append(c.source.strip()); continue
        src = '\n'.join(l for l in c.source.splitlines() if not l.startswith('#|')).strip()
        if d.get('echo:') != 'false' and src: parts.append(f'```python\n{src}\n```')
        parts += [m for m in map(output_md, c.get('outputs', [])) if m]
    text = '<!-- generated from nbs/index.ipynb by tools/make_readme.py (make readme); do not edit -->\n\n' + '\n\n'.join(parts) + '\n'
    Path(out).write_text(text)
    print(f'wrote {out}')

if __name__ == '__main__': main(*sys.argv[1:])
