"""``imgcls-grade``: grade a class's lab notebooks against the chapter's hidden solutions.

    imgcls-grade SUBMISSIONS_DIR --chapter 3 --out grades.csv

1. **The key.** The chapter, with its solutions, runs once like a submission. Its run gives
   the chapter variables the judges need (``context`` in :mod:`imgcls_helpers.labs`), and
   every solution must pass its own check, or nothing is graded.
2. **Each submission** runs in its own process and Jupyter kernel (nbclient): a time limit
   per cell (an endless loop is interrupted and the notebook carries on), errors recorded
   and the next cells run, no network where the machine allows a private network namespace,
   and a hard limit for the whole notebook. A last cell added by the grader pickles the
   answer variables out of the kernel.
3. **Judging** happens here, in the grader's worker process, with the judges of
   :mod:`imgcls_helpers.exercises` and the key's context. What the notebook printed, and its
   own copy of ``labs`` or ``checks``, play no part. Code the student wrote for an exercise
   (cells that differ from the handout) is read for calls the exercise forbids.
4. **Output:** a CSV with one row per student and exercise (student, chapter, exercise,
   points, max_points, status, message) and one Markdown feedback file per student.

A broken submission (not JSON, the wrong chapter, a kernel that dies, an endless loop, a
missing variable, an answer of the wrong type) gets a status that says so, and the rest of
the class is graded as usual.
"""

from __future__ import annotations

import argparse
import ast
import csv
import json
import os
import pickle
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nbformat

from . import labs

ROOT = Path(__file__).resolve().parents[1]
SOLUTION_NOTE = "**Solution.**"
FIELDS = ("student", "chapter", "exercise", "points", "max_points", "status", "message")


def handout(chapter: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """A copy of ``chapter`` without its solution cells and the notes that announce them:
    what students get (``make handouts``) and what the grader compares submissions with."""
    kept = []
    for cell in chapter.cells:
        if "solution" in cell.metadata.get("tags", []):
            if (
                kept
                and kept[-1].cell_type == "markdown"
                and kept[-1].source.startswith(SOLUTION_NOTE)
            ):
                kept.pop()
            continue
        kept.append(cell)
    result = nbformat.from_dict(chapter)
    result.cells = kept
    return result


def chapter_notebook(chapter: int) -> Path:
    """The chapter's notebook in this repository (the solutions live there)."""
    found = sorted((ROOT / "notebooks").glob(f"{chapter:02d}_*.ipynb"))
    if not found:
        raise SystemExit(
            f"no notebooks/{chapter:02d}_*.ipynb next to the package: pass --solutions PATH"
        )
    return found[0]


# ------------------------------------------------------------------ reading the student's code


def _title(notebook: nbformat.NotebookNode) -> str:
    for cell in notebook.cells:
        if cell.cell_type == "markdown" and cell.source.lstrip().startswith("# "):
            return cell.source.lstrip().splitlines()[0]
    return ""


def _binds(source: str, names: set[str]) -> bool:
    """Whether this code assigns or defines one of ``names``."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return any(f"{name} =" in source or f"def {name}(" in source for name in names)
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.ClassDef) and node.name in names:
            return True
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store) and node.id in names:
            return True
    return False


def student_code(submission, reference, exercise: labs.Exercise) -> list[str]:
    """The code a student wrote for one exercise: code cells that are not in the handout
    (``reference``), either under the exercise's heading or binding one of its answers."""
    given = {cell.source.strip() for cell in reference.cells if cell.cell_type == "code"}
    heading = f"### Exercise {exercise.id.split('.')[1]}:"
    sources, inside = [], False
    for cell in submission.cells:
        text = cell.source if isinstance(cell.source, str) else "".join(cell.source)
        if cell.cell_type == "markdown" and text.lstrip().startswith("#"):
            inside = text.lstrip().startswith(heading)
        elif (
            cell.cell_type == "code"
            and text.strip() not in given
            and (inside or _binds(text, set(exercise.answers)))
        ):
            sources.append(text)
    return sources


# ------------------------------------------------------------------ one notebook, one process

DUMP_CELL = """\
def _imgcls_grade_dump(names, path):
    import builtins, pathlib, cloudpickle
    found = {}
    for name in names:
        if name not in globals():
            found[name] = ("missing", None)
            continue
        try:
            found[name] = ("ok", cloudpickle.dumps(globals()[name]))
        except Exception as error:
            found[name] = ("unreadable", f"{type(error).__name__}: {error}")
    pathlib.Path(path).write_bytes(cloudpickle.dumps(found))
_imgcls_grade_dump(__NAMES__, __PATH__)
"""


class _JudgeTimeout(BaseException):
    """Raised by the alarm inside a judge that runs too long (not an Exception, so that the
    judge's own error handling cannot swallow it)."""


def _execute(notebook, workdir: Path, cell_timeout: int) -> tuple[str, str, list[str]]:
    """Run every cell; return (status, message, errors), status '' when the kernel lived."""
    from nbclient import NotebookClient
    from nbclient.exceptions import DeadKernelError

    started = {"index": -1}
    client = NotebookClient(
        notebook,
        timeout=cell_timeout,
        kernel_name="python3",
        allow_errors=True,
        interrupt_on_timeout=True,
        error_on_timeout={
            "ename": "CellTimeoutError",
            "evalue": f"the cell ran for more than {cell_timeout} s and was interrupted",
            "traceback": [],
        },
        resources={"metadata": {"path": str(workdir)}},
        on_cell_start=lambda cell, cell_index: started.update(index=cell_index),
    )
    status, message = "", ""
    try:
        client.execute()
    except DeadKernelError:
        status = "kernel died"
        message = (
            f"the Python kernel died in cell {started['index'] + 1} (a crash, os._exit, or "
            "too much memory), so the cells after it never ran"
        )
    errors = []
    for index, cell in enumerate(notebook.cells):
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                errors.append(f"cell {index + 1}: {output['ename']}: {output['evalue']}"[:300])
    return status, message, errors


def _load_answers(path: Path) -> dict:
    """The pickled answers; one that cannot be read is kept as an explanation."""
    import cloudpickle

    answers = {}
    if not path.exists():
        return answers
    for name, (state, payload) in pickle.loads(path.read_bytes()).items():
        if state == "ok":
            try:
                answers[name] = cloudpickle.loads(payload)
            except Exception as error:
                answers[name] = _Unreadable(f"{type(error).__name__}: {error}")
        elif state == "unreadable":
            answers[name] = _Unreadable(payload)
    return answers


class _Unreadable:
    """An answer the grader could not take out of the kernel (pickling failed)."""

    def __init__(self, why: str):
        self.why = why

    def __repr__(self) -> str:
        return f"<an object the grader could not read: {self.why}>"


def _judge(exercise, answers, context, sources, seconds: int) -> labs.Verdict:
    unreadable = [n for n in exercise.answers if isinstance(answers.get(n), _Unreadable)]
    if unreadable:
        why = answers[unreadable[0]].why
        return labs.Verdict(exercise, "incorrect", f"`{unreadable[0]}` could not be read: {why}")

    def alarm(signum, frame):
        raise _JudgeTimeout

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(seconds)
    try:
        return labs.verdict(exercise, answers, context, sources)
    except _JudgeTimeout:
        return labs.Verdict(
            exercise, "incorrect", f"checking your answer took more than {seconds} s"
        )
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def grade_one(
    submission: Path, chapter: int, solutions: Path, key: Path | None, out: Path, cell_timeout: int
) -> None:
    """Grade one notebook and write its result (JSON) to ``out``. With ``key=None`` the
    notebook is the chapter with its solutions, and its run becomes the key (written next
    to ``out`` as ``key.pkl``)."""
    exercises = labs.exercises(chapter)
    reference = handout(nbformat.read(solutions, as_version=4))
    result = {"status": "", "message": "", "errors": [], "verdicts": []}

    def finish(status="", message=""):
        result.update(status=status, message=message)
        out.write_text(json.dumps(result))

    try:
        notebook = nbformat.reads(submission.read_text(encoding="utf-8"), as_version=4)
        assert isinstance(notebook.get("cells"), list)
    except Exception as error:
        return finish("invalid notebook", f"{submission.name} is not a readable notebook: {error}")
    if _title(notebook) != _title(reference):
        found = _title(notebook) or "no title"
        return finish("wrong chapter", f"this is not the chapter {chapter} lab ({found!r})")
    for cell in notebook.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None

    names = {n for e in exercises for n in e.answers}
    if key is None:
        names |= {n for e in exercises for n in e.context}
    workdir = Path(tempfile.mkdtemp(prefix="imgcls-grade-"))
    dump = workdir / "answers.pkl"
    notebook.cells.append(
        nbformat.v4.new_code_cell(
            DUMP_CELL.replace("__NAMES__", repr(sorted(names))).replace("__PATH__", repr(str(dump)))
        )
    )
    status, message, errors = _execute(notebook, workdir, cell_timeout)
    result["errors"] = errors
    if status:
        shutil.rmtree(workdir, ignore_errors=True)
        return finish(status, message)
    answers = _load_answers(dump)
    shutil.rmtree(workdir, ignore_errors=True)
    if key is None:
        context = {n: answers[n] for e in exercises for n in e.context if n in answers}
        with open(out.with_name("key.pkl"), "wb") as file:
            import cloudpickle

            cloudpickle.dump(context, file)
    else:
        with open(key, "rb") as file:
            context = pickle.load(file)
    for exercise in exercises:
        sources = student_code(notebook, reference, exercise)
        verdict = _judge(exercise, answers, context, sources, seconds=max(cell_timeout, 30))
        result["verdicts"].append([exercise.id, verdict.status, verdict.message])
    finish()


# ------------------------------------------------------------------ the class


def _sandbox() -> list[str]:
    """A command prefix that cuts the network off (loopback stays: Jupyter needs it), where
    the machine allows a private network namespace; empty where it does not."""
    if shutil.which("unshare") and shutil.which("ip"):
        for flags in (["-n"], ["-rn"]):
            probe = ["unshare", *flags, "sh", "-c", "ip link set lo up"]
            if subprocess.run(probe, capture_output=True).returncode == 0:
                return ["unshare", *flags, "sh", "-c", 'ip link set lo up && exec "$@"', "sh"]
    return []


def _environment(profile: str, jobs: int) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        IMGCLS_PROFILE=profile,
        TQDM_DISABLE="1",
        MPLBACKEND="Agg",
        HF_HUB_OFFLINE="1",
        OMP_NUM_THREADS=str(max(1, (os.cpu_count() or 1) // jobs)),
    )
    env.pop("CI", None)  # a student's notebook is graded as it runs for the student
    return env


def _run_worker(args, submission: Path, key: Path | None, out: Path, sandbox, env) -> dict:
    command = [
        *sandbox,
        sys.executable,
        "-m",
        "imgcls_helpers.grade",
        "--worker",
        str(submission),
        "--chapter",
        str(args.chapter),
        "--solutions",
        str(args.solutions),
        "--cell-timeout",
        str(args.cell_timeout),
        "--result",
        str(out),
    ]
    if key is not None:
        command += ["--key", str(key)]
    # A session of its own, so that a timeout stops the worker and its kernel together.
    process = subprocess.Popen(
        command,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        stdout, stderr = process.communicate(timeout=args.notebook_timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        return {
            "status": "timeout",
            "message": f"the notebook ran for more than {args.notebook_timeout} s in all",
            "errors": [],
            "verdicts": [],
        }
    if not out.exists():
        tail = (stderr or stdout).strip().splitlines()[-3:]
        raise RuntimeError(f"the grader failed on {submission.name}: {' / '.join(tail)}")
    return json.loads(out.read_text())


def _rows(student: str, chapter: int, result: dict) -> list[dict]:
    rows = []
    by_id = {v[0]: v for v in result["verdicts"]}
    for exercise in labs.exercises(chapter):
        if result["status"]:
            status, message = result["status"], result["message"]
        else:
            _, status, message = by_id[exercise.id]
        points = exercise.points if status == "correct" else 0
        rows.append(
            dict(
                student=student,
                chapter=chapter,
                exercise=exercise.id,
                points=points,
                max_points=exercise.points,
                status=status,
                message=message,
            )
        )
    return rows


def _feedback(student: str, chapter: int, rows: list[dict], errors: list[str]) -> str:
    got, total = sum(r["points"] for r in rows), sum(r["max_points"] for r in rows)
    lines = [
        f"# Chapter {chapter} lab: feedback for {student}",
        "",
        f"Score: **{got} / {total}**",
        "",
        "| exercise | points | status | what to look at |",
        "|---|---|---|---|",
    ]
    for row in rows:
        message = row["message"].replace("|", "\\|")
        lines.append(
            f"| {row['exercise']} | {row['points']} / {row['max_points']} "
            f"| {row['status']} | {message} |"
        )
    if errors:
        lines += ["", "Errors while your notebook ran:", ""] + [f"- {e}" for e in errors]
    return "\n".join(lines) + "\n"


def student_name(path: Path) -> str:
    """The student a file belongs to: its name up to the first dot."""
    return path.name.split(".")[0] or path.name


def grade_class(args) -> list[dict]:
    """Build the key, grade every file in the submissions folder, write the CSV and the
    feedback files; return the CSV's rows."""
    start = time.perf_counter()
    files = sorted(p for p in Path(args.submissions).iterdir() if p.is_file() and p.name[0] != ".")
    work = Path(tempfile.mkdtemp(prefix="imgcls-grade-"))
    sandbox = _sandbox()
    if not sandbox:
        print("(no private network namespace on this machine: notebooks run with the network)")
    env = _environment(args.profile, args.jobs)

    print(f"building the answer key from {args.solutions} ...", flush=True)
    key_result = _run_worker(args, Path(args.solutions), None, work / "key.json", sandbox, env)
    failing = [v for v in key_result["verdicts"] if v[1] != "correct"]
    if key_result["status"] or failing or not key_result["verdicts"]:
        problem = key_result["message"] or "; ".join(f"{v[0]}: {v[2]}" for v in failing)
        raise SystemExit(f"the hidden solutions do not pass their own checks: {problem}")

    def one(indexed):
        index, path = indexed
        try:
            return path, _run_worker(
                args, path, work / "key.pkl", work / f"{index}.json", sandbox, env
            )
        except RuntimeError as error:  # a bug of ours must not stop the class's grading
            return path, {
                "status": "grader error",
                "message": str(error),
                "errors": [],
                "verdicts": [],
            }

    feedback_dir = Path(args.feedback or Path(args.out).with_suffix("")).resolve()
    feedback_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        for path, result in pool.map(one, enumerate(files)):
            student = student_name(path)
            mine = _rows(student, args.chapter, result)
            rows += mine
            text = _feedback(student, args.chapter, mine, result["errors"])
            (feedback_dir / f"{student}.md").write_text(text)
            got = sum(r["points"] for r in mine)
            note = f" ({result['status']})" if result["status"] else ""
            print(f"{path.name}: {got} / {sum(r['max_points'] for r in mine)}{note}", flush=True)
    with open(args.out, "w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    shutil.rmtree(work, ignore_errors=True)
    seconds = time.perf_counter() - start
    print(f"graded {len(files)} submissions in {seconds:.0f} s: {args.out}, {feedback_dir}/")
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="imgcls-grade",
        description="Grade submitted lab notebooks of one chapter against its hidden solutions.",
    )
    parser.add_argument("submissions", help="a folder of submitted notebooks, one per student")
    parser.add_argument("--chapter", type=int, required=True)
    parser.add_argument("--out", default="grades.csv", help="the CSV to write")
    parser.add_argument("--feedback", help="folder for one feedback file per student")
    parser.add_argument("--solutions", help="the chapter with its solutions (default: the book's)")
    parser.add_argument("--jobs", type=int, default=2, help="notebooks run side by side")
    parser.add_argument("--profile", default="smoke", help="IMGCLS_PROFILE for every run")
    parser.add_argument("--cell-timeout", type=int, default=300, help="seconds per cell")
    parser.add_argument("--notebook-timeout", type=int, default=1800, help="seconds per notebook")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--key", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.solutions = str(Path(args.solutions or chapter_notebook(args.chapter)).resolve())
    if args.worker:
        key = Path(args.key) if args.key else None
        grade_one(
            Path(args.submissions),
            args.chapter,
            Path(args.solutions),
            key,
            Path(args.result),
            args.cell_timeout,
        )
        return
    if not Path(args.submissions).is_dir():
        raise SystemExit(f"{args.submissions} is not a folder of submissions")
    grade_class(args)


if __name__ == "__main__":
    main()
