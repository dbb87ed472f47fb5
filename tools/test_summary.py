"Print one closing line `N passed, N failed` for `make test`: notebooks run by nbdev_test plus pytest's tests."
import re, sys
import xml.etree.ElementTree as ET
from pathlib import Path

def notebook_counts(log:Path):
    "Notebooks started by `nbdev_test --do_print`, and those it lists as failed"
    text = log.read_text(errors='replace') if log.exists() else ''
    started = re.findall(r'^Starting (.+\.ipynb)$', text, re.M)
    failed = []
    if 'nbdev Tests Failed On The Following Notebooks' in text:
        tail = text.split('nbdev Tests Failed On The Following Notebooks:', 1)[1]
        failed = re.findall(r'^\t(\S+\.ipynb)$', tail, re.M)
    if not started and not failed and text.strip(): failed = ['nbdev_test (did not run)']
    return len(started) - len([f for f in failed if f.endswith('.ipynb')]), len(failed)

def pytest_counts(xml:Path):
    "Passed and failed (failures + errors) tests from pytest's junit XML; skipped are reported apart"
    if not xml.exists(): return 0, 1, 0
    root = ET.parse(xml).getroot()
    suites = [root] if root.tag == 'testsuite' else list(root.iter('testsuite'))
    tot = sum(int(s.get('tests', 0)) for s in suites)
    bad = sum(int(s.get('failures', 0)) + int(s.get('errors', 0)) for s in suites)
    skip = sum(int(s.get('skipped', 0)) for s in suites)
    return tot - bad - skip, bad, skip

if __name__ == '__main__':
    nb_ok, nb_bad = notebook_counts(Path(sys.argv[1]))
    py_ok, py_bad, py_skip = pytest_counts(Path(sys.argv[2]))
    print(f'notebooks: {nb_ok} passed, {nb_bad} failed; pytest: {py_ok} passed, {py_bad} failed, {py_skip} skipped')
    print(f'{nb_ok + py_ok} passed, {nb_bad + py_bad} failed' + (f', {py_skip} skipped' if py_skip else ''))
