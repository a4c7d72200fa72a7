"The `fewshot-fastai` command for tests: through `main` in this process (fast), or as a real process"
import contextlib, io, os, subprocess, sys, warnings
from fewshot_fastai.cli import main

def run(*args, timeout=600, process=False):
    "`fewshot-fastai ARGS` -> CompletedProcess: in a real process with `process=True`, else through `main` here"
    args = [str(a) for a in args]
    if process:
        env = {**os.environ, 'PYTHONWARNINGS': 'ignore'}
        return subprocess.run([sys.executable, '-m', 'fewshot_fastai', *args], capture_output=True, text=True,
                              timeout=timeout, env=env)
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), warnings.catch_warnings():
        warnings.simplefilter('ignore')
        try: rc = main(args)
        except SystemExit as e: rc = e.code   # argparse's own errors
    return subprocess.CompletedProcess(args, rc or 0, out.getvalue(), err.getvalue())

def one_line_error(r, msg:str):
    "`r` failed with exit status 2 and one line on stderr that holds `msg`, no traceback"
    lines = [l for l in r.stderr.splitlines() if l.strip()]
    assert r.returncode == 2 and len(lines) == 1 and msg in lines[0] and 'Traceback' not in r.stderr, (r.returncode, r.stderr[-2000:])
