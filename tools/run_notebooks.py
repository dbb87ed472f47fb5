"""Execute the chapter notebooks in place so that they are committed with their outputs (`make notebooks`).

Each notebook runs as `nbdev_test` runs it (execnb, from `nbs/`, cells flagged `slow` or `notest` skipped), and
keeps only the outputs a reader needs: results, tables and figures. What would differ from one run to the next or
from one machine to another is left out: progress bars and warnings (stderr), widget views, execution counts.
`nbdev_clean` then normalises the metadata, so `make test`'s sync check holds on the result.

Usage: python tools/run_notebooks.py [NOTEBOOK ...]   (default: every nbs/[0-9]*.ipynb and nbs/index.ipynb)
"""
import os, re, subprocess, sys
from pathlib import Path
from execnb.nbio import read_nb, write_nb
from execnb.shell import CaptureShell

ROOT = Path(__file__).resolve().parents[1]
SKIP_FLAGS = {'slow', 'notest'}
DROP_MIME = ('application/vnd.jupyter.widget-view+json',)

def directives(src:str)->dict:
    return {m.group(1).strip().rstrip(':'): m.group(2).strip() for m in re.finditer(r'^#\|\s*([\w-]+:?)\s*(.*)$', src, re.M)}

def skip(cell)->bool:
    "Cells nbdev_test does not run: markdown, the export call, eval: false, and the skipped flags"
    if cell.cell_type != 'code': return True
    if 'nbdev_export' + '(' in cell.source: return True
    d = directives(cell.source)
    return d.get('eval', '').lower() == 'false' or bool(SKIP_FLAGS & d.keys())

def keep(o)->bool:
    "Outputs a reader needs; stderr (progress bars, warnings) and widget views are dropped"
    if o.get('output_type') == 'stream': return o.get('name') == 'stdout'
    data = o.get('data', {})
    return not any(m in data for m in DROP_MIME)

def run(nb_path:Path):
    nb_path = nb_path.resolve()
    nb = read_nb(nb_path)
    for c in nb.cells:
        if c.cell_type == 'code': c.outputs, c.execution_count = [], None
    cwd = os.getcwd()
    os.chdir(nb_path.parent)
    try: CaptureShell(nb_path).run_all(nb, exc_stop=True, preproc=skip)
    finally: os.chdir(cwd)
    for c in nb.cells:
        if c.cell_type != 'code': continue
        c.outputs = [o for o in c.get('outputs', []) if keep(o)]
        for o in c.outputs:
            if 'execution_count' in o: o['execution_count'] = None
        c.execution_count = None
    write_nb(nb, nb_path)
    print(f'executed {os.path.relpath(nb_path, ROOT)}', flush=True)

def main(paths):
    "One fresh process per notebook, so that no notebook sees another's imports or state"
    if len(paths) == 1: return run(Path(paths[0]))
    nbs = [Path(p) for p in paths] or sorted((ROOT/'nbs').glob('[0-9]*.ipynb')) + [ROOT/'nbs'/'index.ipynb']
    for p in nbs: subprocess.run([sys.executable, __file__, str(p)], check=True)

if __name__ == '__main__': main(sys.argv[1:])
