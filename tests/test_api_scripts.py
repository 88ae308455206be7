"""The Python API as people write Python: the README's example saved as a plain script (no main guard),
the same piped to `python -`, and a notebook run by a real Jupyter kernel.

Before the fix each trial process re-imported the user's `__main__`, which started the study again. Every
script here first appends its pid to a marker file: a script body that ran more than once shows there.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
TINY_TRAIN = 80  # the tiny CSV has 600 rows: 420 left for training after validation and test
FEW_REPEATS = "latency_runs=5, throughput_batches=1"  # what these tests check is where the script runs


def readme_python_example() -> str:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
    assert blocks, "the README has no Python example"
    return blocks[0]


def marked(script: str, marker: Path) -> str:
    """Prepend one line that records each time the script's body runs."""
    return f"import os; open({str(marker)!r}, 'a').write(f'{{os.getpid()}}\\n')\n{script}"


def tiny_version(example: str, db: Path, model: str, data: str, ood: str) -> str:
    """The README's example with the tiny fixtures substituted as arguments, everything else verbatim."""
    where = f"model={model!r}, dataset={data!r}, ood_dataset={ood!r}, preset='quick', {FEW_REPEATS}"
    out = example.replace('"my.db"', repr(str(db)))
    out = out.replace("train_size=500", f"train_size={TINY_TRAIN}")
    out = out.replace("pb.run(", f"pb.run({where}, ")
    out = re.sub(r'pb\.study\(("[^"]+"), ', rf"pb.study(\1, {where}, train_size={TINY_TRAIN}, ", out)
    out = out.replace("pb.parameters(", f"pb.parameters(model={model!r}, ")
    assert out.count(model) == example.count("pb.run(") + example.count("pb.study(") + \
        example.count("pb.parameters("), "a call of the example was not given the tiny model"
    return out


def start_python(args: list[str], cwd: Path) -> subprocess.Popen:
    src = str(ROOT / "src")
    env = {**os.environ, "HF_HUB_OFFLINE": "1",
           "PYTHONPATH": os.pathsep.join(p for p in (src, os.environ.get("PYTHONPATH")) if p)}
    return subprocess.Popen([sys.executable, *args], cwd=cwd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)


def finish(proc: subprocess.Popen, stdin: str | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    out, err = proc.communicate(stdin, timeout=timeout)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def python(args: list[str], cwd: Path, stdin: str | None = None) -> subprocess.CompletedProcess:
    return finish(start_python(args, cwd), stdin)


def expected_trials(example: str) -> int:
    """Trials the example plans: pb.run's method list, data-efficiency methods x sizes, rank-sweep ranks."""
    run_methods = re.search(r"pb\.run\(.*?methods=\[(.*?)\]", example).group(1)
    de = re.search(r'pb\.study\("data-efficiency".*?methods=\[(.*?)\].*?sizes=\[(.*?)\]', example)
    ranks = re.search(r'pb\.study\("rank-sweep".*?ranks=\[(.*?)\]', example).group(1)
    count = lambda items: len([x for x in items.split(",") if x.strip()])  # noqa: E731
    return count(run_methods) + count(de.group(1)) * count(de.group(2)) + count(ranks)


def stored(db: Path) -> list[tuple[str, str]]:
    from peftbench.store.db import Store

    with Store(db, create=False) as store:
        return [(r["method"], r["status"]) for r in store.rows()]


def assert_ran_once(proc: subprocess.CompletedProcess, marker: Path, db: Path, trials: int) -> None:
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert len(marker.read_text().split()) == 1, "the script's body ran again in a trial process"
    rows = stored(db)
    assert len(rows) == trials and {s for _, s in rows} == {"ok"}, rows


def test_preparation_data_omits_main_only_for_our_processes():
    """The unit of the fix: our named processes are not told to re-import __main__; others still are."""
    from multiprocessing import spawn

    from peftbench.execute.isolation import PROCESS_PREFIX, without_user_main

    fake = lambda name: {"name": name, "init_main_from_path": "/x/study.py", "sys_path": []}  # noqa: E731
    wrapped = without_user_main(fake)
    assert "init_main_from_path" not in wrapped(f"{PROCESS_PREFIX}trial-abc")
    assert wrapped("someone-else")["init_main_from_path"] == "/x/study.py"
    assert without_user_main(wrapped) is wrapped  # installed once, however many executors start
    assert spawn.get_preparation_data("x") is not None


def test_readme_example_as_plain_script(tmp_path, tiny_model, tiny_csv, tiny_ood_csv):
    example = readme_python_example()
    assert "__main__" not in example  # the example is the plain script people save
    db, marker = tmp_path / "my.db", tmp_path / "ran"
    script = tmp_path / "study.py"
    script.write_text(marked(tiny_version(example, db, tiny_model, tiny_csv, tiny_ood_csv), marker))
    proc = python([str(script)], cwd=tmp_path)
    assert_ran_once(proc, marker, db, expected_trials(example))
    assert "LoRA-r8" in proc.stdout and "IA3" in proc.stdout  # its printed tables came out


def test_a_script_from_stdin_and_python_dash_c(tmp_path, tiny_model, tiny_csv, tiny_ood_csv):
    """`python - < study.py`: __main__ is "<stdin>", which a trial process must not try to re-run; and
    `python -c`. Both at once: each is mostly interpreter start-up."""
    call = (f"pb.run(methods=['BitFit'], model={tiny_model!r}, dataset={tiny_csv!r}, ood_dataset={tiny_ood_csv!r}, "
            f"preset='quick', train_size=48, epochs=1, {FEW_REPEATS}, db={{db!r}})")
    (tmp_path / "stdin").mkdir()
    (tmp_path / "c").mkdir()
    stdin_db, stdin_marker = tmp_path / "stdin" / "stdin.db", tmp_path / "stdin" / "ran"
    script = (f"import peftbench as pb\ndf = {call.format(db=str(stdin_db))}\n"
              "print(df[['method', 'status']].to_string())\n")
    c_db, c_marker = tmp_path / "c" / "c.db", tmp_path / "c" / "ran"
    code = marked(f"import peftbench as pb; {call.format(db=str(c_db))}", c_marker)
    from_stdin = start_python(["-"], cwd=tmp_path / "stdin")
    dash_c = start_python(["-c", code], cwd=tmp_path / "c")
    proc = finish(from_stdin, marked(script, stdin_marker))
    assert_ran_once(proc, stdin_marker, stdin_db, 1)
    assert "BitFit" in proc.stdout
    assert_ran_once(finish(dash_c), c_marker, c_db, 1)


# The call, on the tiny model (the real embedded model trains in test_embedded_e2e): what is tested
# here is that the script's body runs once, whatever the model.
QUICK = ('pb.run(methods=["BitFit", "LoRA-r8"], model={model!r}, preset="quick", train_size=64, epochs=1, '
         f'{FEW_REPEATS}, {{data}}db={{db!r}})')


def test_plain_script_on_embedded_data(tmp_path, tiny_model):
    """The issue's study.py, at quick sizes on the embedded data (its default dataset and OOD set)."""
    db, marker = tmp_path / "api.db", tmp_path / "ran"
    script = tmp_path / "study.py"
    call = QUICK.format(model=tiny_model, data="", db=str(db))
    script.write_text(marked(f"import peftbench as pb\ndf = {call}\n"
                             "print(df[['method', 'status', 'accuracy']].to_string())\n", marker))
    proc = python([str(script)], cwd=tmp_path)
    assert_ran_once(proc, marker, db, 2)
    assert "BitFit" in proc.stdout and "LoRA-r8" in proc.stdout


def test_notebook_with_a_real_kernel(tmp_path, tiny_model, tiny_csv):
    """A notebook executed by ipykernel through nbclient, as Jupyter runs it (its __main__ has no file)."""
    import nbformat
    from nbclient import NotebookClient

    db = tmp_path / "nb.db"
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("import peftbench as pb"),
        nbformat.v4.new_code_cell(f"df = {QUICK.format(model=tiny_model, data=f'dataset={tiny_csv!r}, ', db=str(db))}"
                                  "\ndf[['method', 'status']]"),
        nbformat.v4.new_code_cell("print(sorted(df['method']), sorted(df['status']), len(pb.results(" +
                                  repr(str(db)) + ")))"),
    ]
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    table = [o for o in nb.cells[1].outputs if o["output_type"] == "execute_result"]
    assert table and "LoRA-r8" in table[0]["data"]["text/plain"]
    printed = "".join(o.get("text", "") for o in nb.cells[2].outputs if o["output_type"] == "stream")
    assert printed.strip() == "['BitFit', 'LoRA-r8'] ['ok', 'ok'] 2"
    assert sorted(stored(db)) == [("BitFit", "ok"), ("LoRA-r8", "ok")]
