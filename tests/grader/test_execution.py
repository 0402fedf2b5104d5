"""grader.run.execution: each exercise captured after its test cell, over the kernel's own
channel, whatever the rest of the notebook does (errors, endless loops, a dying kernel,
processes left behind, floods of output, imitations of the capture).

The notebooks are tiny and import nothing heavy, and the capture here is a small one of
the test's own (the lab's is tested in tests/grader/labs/), so each kernel starts and
stops fast.
"""

import contextlib
import time

import psutil
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from grader.records import MAX_ERROR_CHARS, Failure, FailureKind, RunEnd
from grader.run import watchdog
from grader.run.budget import TimeBudget
from grader.run.captures import MARKER, CapturePlan
from grader.run.execution import (
    TIMEOUT_ERROR,
    GracePeriods,
    GradingExecute,
    execute,
)
from grader.run.kernel_client import max_frame_bytes
from grader.run.output_size import OUTPUT_OVERHEAD_BYTES, json_size, message_size
from grader.run.streams import merged_streams

# What the tests capture: the value the student's `answer_<exercise>()` returns.
CAPTURE = '''
def capture(exercise, namespace, inputs):
    function = namespace.get("answer_" + exercise)
    if function is None:
        return {"missing": True}
    return {"value": function(), "inputs": inputs}
'''
# Each exercise's inputs, as the kernel is sent them: JSON data, floats exact.
INPUTS = {"X": [0.1, 7], "Y": {"z": [1e-300, -2.5]}}
PLAN = CapturePlan({"X_test": "X", "Y_test": "Y"}, CAPTURE, inputs=INPUTS)
DEFAULT_GRACE = GracePeriods()


def cell(code, grade_id=None, **metadata):
    if grade_id:
        metadata["nbgrader"] = {"grade_id": grade_id, "grade": grade_id.endswith("_test"),
                                "solution": not grade_id.endswith("_test"), "locked": False,
                                "schema_version": 3}
    return new_code_cell(code, metadata=metadata)


def answers(exercise="X", value=1):
    return cell(f"def answer_{exercise}():\n    return {value!r}")


def run(workdir, *cells, cell_timeout=10, timeout=30, output_bytes=4 * 10**6, plan=PLAN,
        grace=DEFAULT_GRACE):
    return execute(new_notebook(cells=list(cells)), workdir=workdir, plan=plan,
                   cell_timeout=cell_timeout, timeout=timeout, output_bytes=output_bytes,
                   grace=grace)


def printed(outcome, index):
    return "".join(output.get("text", "") for output in outcome.notebook.cells[index].outputs
                   if output.get("output_type") == "stream")


def enames(outcome, index):
    return [output.get("ename") for output in outcome.notebook.cells[index].outputs
            if output.get("output_type") == "error"]


def answer(outcome, exercise):
    return outcome.exercises[exercise].answer


def failure_kind(outcome, exercise):
    failure = outcome.exercises[exercise].failure
    return failure.kind if failure else None


# --- Capture --------------------------------------------------------------------------------

def test_each_exercise_is_captured_after_its_test_cell_and_nothing_of_it_shows(tmp_path):
    outcome = run(tmp_path, answers("X", [1.0, 2.0]), cell("print('test X')", "X_test"),
                  answers("Y", "y"), cell("print('test Y')", "Y_test"))
    assert answer(outcome, "X") == {"value": [1.0, 2.0], "inputs": INPUTS["X"]}
    assert answer(outcome, "Y") == {"value": "y", "inputs": INPUTS["Y"]}
    assert outcome.end is RunEnd.FINISHED
    assert len(outcome.notebook.cells) == 4  # the captures' cells never join the notebook
    for index in range(4):
        assert MARKER not in printed(outcome, index) and "capture" not in printed(outcome, index)
    assert printed(outcome, 1) == "test X\n"


def test_the_capture_sees_the_state_at_its_test_cell(tmp_path):
    outcome = run(tmp_path, answers("X", "first"), cell("pass", "X_test"),
                  answers("X", "redefined later"), cell("pass", "Y_test"))
    assert answer(outcome, "X")["value"] == "first"


def test_fake_answer_lines_printed_by_students_cells_are_ignored(tmp_path):
    fake = (f"print('\\n{MARKER} 0123 {{\"value\": 100}}')\n"
            f"print('\\n{MARKER} X {{\"value\": 100}}')")
    outcome = run(tmp_path, answers("X", 1), cell(fake), cell("pass", "X_test"), cell(fake))
    assert answer(outcome, "X") == {"value": 1, "inputs": INPUTS["X"]}


def test_an_answer_imitated_from_inside_the_capture_voids_it(tmp_path):
    # Student code the capture calls can read the capture's frame, nonce included, and
    # print a line of its own: with two lines, neither is believed.
    imitator = cell("import sys\n"
                    "def answer_X():\n"
                    "    frame = sys._getframe(2)\n"
                    "    nonce = frame.f_locals['nonce']\n"
                    f"    print('\\n{MARKER} ' + nonce + ' {{\"value\": 100}}')\n"
                    "    return 1")
    outcome = run(tmp_path, imitator, cell("pass", "X_test"))
    assert answer(outcome, "X") is None
    assert failure_kind(outcome, "X") is FailureKind.IMITATED


def test_the_capture_runs_even_when_the_test_cell_raised(tmp_path):
    outcome = run(tmp_path, answers("X", 3), cell("raise ValueError('public test broke')",
                                                  "X_test"),
                  cell("pass", "Y_test"))
    run_x = outcome.exercises["X"]
    assert run_x.answer == {"value": 3, "inputs": INPUTS["X"]}
    assert run_x.test_cell_error.error_name == "ValueError"
    assert run_x.test_cell_error.error_value == "public test broke"
    assert answer(outcome, "Y") == {"missing": True}


def test_a_capture_broken_by_the_student_says_how(tmp_path):
    outcome = run(tmp_path, cell("def answer_X():\n    raise KeyError('mine')"),
                  cell("pass", "X_test"))
    failure = outcome.exercises["X"].failure
    assert failure.kind is FailureKind.RAISED and failure.error_name == "KeyError"


def test_a_capture_leaves_no_trace_in_the_kernel_a_later_cell_can_print(tmp_path):
    outcome = run(tmp_path, answers("X", 1), cell("pass", "X_test"),
                  cell("import linecache\n"
                       "print([line for lines in linecache.cache.values()\n"
                       "       for line in (lines[2] if len(lines) > 2 else [])\n"
                       "       if 'def ' + 'capture' in line])\n"
                       "print(sorted(k for k in globals() if 'grader' in k))\n"
                       "print(len(In), 'cells in history')"))
    assert printed(outcome, 2) == "[]\n[]\n4 cells in history\n"


# --- Time limits ----------------------------------------------------------------------------

def test_an_endless_loop_is_interrupted_and_the_cells_after_it_still_run(tmp_path):
    outcome = run(tmp_path, cell("while True:\n    pass"), cell("print('still running')"),
                  answers("X", 1), cell("pass", "X_test"), cell_timeout=2)
    assert TIMEOUT_ERROR in enames(outcome, 0)
    assert printed(outcome, 1) == "still running\n"
    assert answer(outcome, "X")["value"] == 1
    assert outcome.end is RunEnd.FINISHED and outcome.cell_timeouts == 1


def test_an_endless_answer_costs_only_its_exercise_even_with_a_small_total_time(tmp_path):
    # --timeout below --cell-timeout: the endless exercise uses up its own share only.
    endless = cell("def answer_X():\n    while True:\n        pass")
    outcome = run(tmp_path, endless, cell("answer_X()", "X_test"),
                  answers("Y", "fine"), cell("pass", "Y_test"), cell_timeout=60, timeout=16)
    assert failure_kind(outcome, "X") is FailureKind.CELL_TIMED_OUT
    assert answer(outcome, "Y") == {"value": "fine", "inputs": INPUTS["Y"]}
    assert outcome.end is RunEnd.FINISHED


def test_cells_with_no_time_left_are_left_out_and_said_so(tmp_path):
    outcome = run(tmp_path, cell("import time\ntime.sleep(60)"), cell("print('late')"),
                  answers("X", 1), cell("pass", "X_test"), cell_timeout=60, timeout=8)
    assert outcome.cells_not_run >= 1
    assert "not run" in printed(outcome, 1)
    assert outcome.exercises["X"].test_cell_error.kind in (FailureKind.OUT_OF_TIME,
                                                            FailureKind.CELL_TIMED_OUT)


def test_a_cell_that_ignores_the_interrupt_is_stopped_by_the_notebooks_time_limit(tmp_path):
    started = time.monotonic()
    outcome = run(tmp_path, answers("X", 1), cell("pass", "X_test"),
                  cell("import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\n"
                       "while True:\n    pass"),
                  *[cell("print('later')") for _ in range(10)],
                  cell("pass", "Y_test"), cell_timeout=2, timeout=6,
                  grace=GracePeriods(responsive=1, kill=0.5))
    assert outcome.end is RunEnd.TIMED_OUT
    assert answer(outcome, "X")["value"] == 1
    assert failure_kind(outcome, "Y") is FailureKind.NOTEBOOK_TIMED_OUT
    assert time.monotonic() - started < 30


def test_a_cell_that_ends_the_kernel_keeps_the_answers_captured_before(tmp_path):
    outcome = run(tmp_path, answers("X", 1), cell("pass", "X_test"),
                  cell("import os\nos._exit(1)"), cell("pass", "Y_test"))
    assert outcome.end is RunEnd.KERNEL_DIED
    assert answer(outcome, "X")["value"] == 1
    assert failure_kind(outcome, "Y") is FailureKind.KERNEL_DIED


def test_the_time_budget_shares_the_time_between_exercises():
    now = [0.0]
    budget = TimeBudget(timeout=100, cell_timeout=60, exercises=2, clock=lambda: now[0])
    assert budget.capture_reserve == pytest.approx(12.5)
    assert budget.cell_seconds(0) == pytest.approx(37.5)  # 50 - 12.5, below 60
    now[0] = 49.9
    assert budget.cell_seconds(0) is None  # only the capture's reserve is left
    assert budget.capture_seconds(0) == pytest.approx(12.5)
    assert budget.cell_seconds(1) == pytest.approx(37.6)  # until 100 - 12.5
    now[0] = 30.0  # segment 0 finished early: segment 1 gets what it left
    assert budget.cell_seconds(1) == pytest.approx(57.5)
    assert budget.cell_seconds(2) == pytest.approx(60)  # the tail: capped per cell


# --- What the notebook leaves behind, what it does not run, how much it prints ---------------

def _alive(pid):
    with contextlib.suppress(psutil.NoSuchProcess):
        process = psutil.Process(pid)
        return process.status() != psutil.STATUS_ZOMBIE and "sleep" in process.name()
    return False


@pytest.mark.parametrize("polls", ["polled", "never polled"])
def test_no_process_the_notebook_started_outlives_it(tmp_path, monkeypatch, polls):
    if polls == "never polled":  # seen only as nbclient stops the kernel (it failed 1 in N)
        monkeypatch.setattr(watchdog.KernelWatchdog, "POLL_SECONDS", 3600)
    outcome = run(tmp_path, cell(
        "import subprocess\n"
        "child = subprocess.Popen(['sleep', '1000'])\n"
        "own_session = subprocess.Popen(['sleep', '1000'], start_new_session=True)\n"
        "print(child.pid, own_session.pid)"))
    pids = [int(pid) for pid in printed(outcome, 0).split()]
    try:
        assert len(pids) == 2
        assert [pid for pid in pids if _alive(pid)] == []
    finally:  # never leave them behind, even when the test fails
        for pid in filter(_alive, pids):
            psutil.Process(pid).kill()


def test_cells_marked_skipped_do_not_run(tmp_path):
    outcome = run(tmp_path,
                  cell("open('skipped.txt', 'w').close()\nprint('skipped ran')",
                       grader={"skip": True}),
                  cell("open('ran.txt', 'w').close()\nprint('ran')"))
    assert outcome.notebook.cells[0].outputs == []
    assert outcome.notebook.cells[0].execution_count is None
    assert printed(outcome, 1) == "ran\n"
    assert (tmp_path / "ran.txt").exists()  # the kernel runs in workdir
    assert not (tmp_path / "skipped.txt").exists()


def test_printing_in_pieces_gives_one_output_whatever_the_flushes(tmp_path):
    # Flushes apart in time reach the grader as separate stream messages: merged, two runs
    # of one submission give the same notebook; a progress bar keeps only its last state.
    pieces = "import sys, time\n" + "".join(
        f"print('{word}', flush=True)\ntime.sleep(0.15)\n" for word in ("one", "two"))
    progress = ("import time\nfor done in (10, 50, 100):\n"
                "    print(f'\\r{done}%', end='', flush=True)\n    time.sleep(0.1)\nprint()")
    outcome = run(tmp_path, cell(pieces), cell(progress))
    assert [output["text"] for output in outcome.notebook.cells[0].outputs] == ["one\ntwo\n"]
    assert [output["text"] for output in outcome.notebook.cells[1].outputs] == ["100%\n"]


def test_merged_streams_keep_order_names_and_the_last_state_of_a_line():
    def stream(name, text):
        return {"output_type": "stream", "name": name, "text": text}
    outputs = [stream("stdout", "a\n"), stream("stdout", "10%\r50%\r"), stream("stdout", "100%\n"),
               {"output_type": "display_data", "data": {}}, stream("stdout", "b\r\n"),
               stream("stderr", "w\n"), stream("stdout", "c")]
    assert merged_streams(outputs) == [
        stream("stdout", "a\n100%\n"), {"output_type": "display_data", "data": {}},
        stream("stdout", "b\r\n"), stream("stderr", "w\n"), stream("stdout", "c")]
    odd = [stream("stdout", 42), stream("stdout", "a"), stream("stdout", ["b"]), "junk"]
    assert merged_streams(odd) == odd  # a kernel can send anything: kept, never an error
    long_line = "x" * 2_000_000  # nbclient's quadratic expression would take minutes here
    assert merged_streams([stream("stdout", long_line), stream("stdout", "\n")]) == [
        stream("stdout", long_line + "\n")]


def test_a_flood_of_output_in_one_cell_is_truncated(tmp_path):
    outcome = run(tmp_path, cell("for i in range(100_000):\n    print(i)"),
                  cell("print('next')"))
    text = printed(outcome, 0)
    assert text.startswith("0\n1\n")
    assert "... Output truncated ..." in text
    assert len(text.splitlines()) <= 1001
    assert printed(outcome, 1) == "next\n"


def test_the_output_budget_is_one_for_the_whole_submission(tmp_path):
    # Many cells, each under any per-cell cap: together they stop at the budget.
    def flood():
        return cell("print('x' * 400_000)")
    outcome = run(tmp_path, answers("X", 1), *[flood() for _ in range(8)],
                  cell("pass", "X_test"), output_bytes=10**6)
    kept = sum(len(printed(outcome, index)) for index in range(len(outcome.notebook.cells)))
    assert kept < 1.1 * 10**6
    notes = [index for index in range(10) if "output passed 1 MB" in printed(outcome, index)]
    assert len(notes) == 1
    assert outcome.output_dropped
    assert answer(outcome, "X")["value"] == 1  # the capture is not part of the budget


def test_display_updates_count_against_the_budget(tmp_path):
    outcome = run(tmp_path, cell("from IPython.display import display, update_display\n"
                                 "display('start', display_id='d')\n"
                                 "for _ in range(50):\n"
                                 "    update_display('y' * 100_000, display_id='d')"),
                  output_bytes=10**6)
    assert outcome.output_dropped
    shown = str(outcome.notebook.cells[0].outputs)
    assert len(shown) < 1.2 * 10**6


def test_a_malformed_message_is_dropped_not_fatal():
    executor = GradingExecute(budget=TimeBudget(timeout=10, cell_timeout=5, exercises=0),
                              output_bytes=10**6, kernel_name="python3")
    target = new_code_cell("x")
    executor.nb = new_notebook(cells=[target])
    for content in ({"name": "stdout", "text": 42}, {"data": 5, "metadata": None},
                    {"name": None}, "not a dict"):
        for msg_type in ("stream", "display_data", "execute_result", "error"):
            executor.process_message({"msg_type": msg_type, "content": content,
                                      "header": {"msg_type": msg_type}, "parent_header": {},
                                      "metadata": {}}, target, 0)
    assert all(output.get("output_type") in ("stream", "display_data", "execute_result",
                                             "error") for output in target.outputs)


# --- Bytes: every message from a kernel is bounded and counted ----------------------------

def test_message_size_counts_buffers_comm_data_and_each_outputs_overhead():
    def size(content, buffers=()):
        return message_size({"content": content, "buffers": list(buffers)})
    assert size({}) == OUTPUT_OVERHEAD_BYTES + 2
    # Its JSON, '{"name":"stdout","text":""}', and one comma too many (near enough).
    assert size({"name": "stdout", "text": ""}) == OUTPUT_OVERHEAD_BYTES + 27 + 1
    assert size({}, [b"x" * 1000, memoryview(b"y" * 500)]) == OUTPUT_OVERHEAD_BYTES + 2 + 1500
    comm = {"comm_id": "c", "data": {"state": {"value": [1, 2.5, None, True]}}}
    assert size(comm) == OUTPUT_OVERHEAD_BYTES + json_size(comm)
    assert size({}, ["not a buffer"]) == OUTPUT_OVERHEAD_BYTES + 2 + len("not a buffer")


def test_json_size_is_the_length_of_the_json_near_enough_and_stops_at_its_limit():
    import json
    value = {"data": {"text/plain": "abc", "n": [1, 22, {"x": None}]}, "ok": False}
    assert abs(json_size(value) - len(json.dumps(value, separators=(",", ":")))) <= 4
    deep = []
    for _ in range(100_000):  # deeper than any recursion would go
        deep = [deep]
    assert json_size(deep) == 3 * 100_000 + 2  # its brackets, and a comma per item
    long_strings = ["x" * 10**6] * 300
    assert json_size(long_strings) == 300 * (10**6 + 2) + 302
    assert 1000 < json_size(long_strings, limit=1000) < 2 * 10**6  # stopped at the first


def test_a_frame_over_the_cap_is_dropped_spends_the_budget_and_later_cells_run(tmp_path):
    over = max_frame_bytes(10**6) + 10**6
    outcome = run(tmp_path, answers("X", 1),
                  cell("from ipykernel.comm import Comm\n"
                       f"Comm(target_name='x', data={{}}, buffers=[b'0' * {over}])"),
                  cell("from IPython.display import display\n"
                       f"display({{'text/plain': 'y' * {over}}}, raw=True)"),
                  cell("print('after')"), cell("pass", "X_test"), output_bytes=10**6)
    # Larger than the whole budget, it spends it, as any message would: said once.
    assert "output passed 1 MB" in printed(outcome, 1)
    assert printed(outcome, 2) == printed(outcome, 3) == ""
    assert outcome.output_dropped and outcome.end is RunEnd.FINISHED
    assert outcome.cell_timeouts == 0
    assert answer(outcome, "X")["value"] == 1  # the kernel is reached again after each


def test_comm_messages_count_against_the_budget_and_never_reach_the_notebook(tmp_path):
    # 2.4 MB in fewer messages than ZMQ's high-water mark (1000): beyond it, a kernel's
    # socket drops what a slower worker has not read (an ipc socket buffers less than
    # TCP's), and what it drops never reaches the budget (20,000 small ones fell under
    # 1 MB in 3 runs of 6 under load).
    outcome = run(tmp_path, cell("from ipykernel.comm import Comm\n"
                                 "c = Comm(target_name='x', data={}, buffers=[b'0' * 400_000])\n"
                                 "for i in range(400):\n"
                                 "    c.send(data={'i': i}, buffers=[b'1' * 5_000])"),
                  cell("print('after')"), output_bytes=10**6)
    assert outcome.output_dropped
    assert "output passed 1 MB" in printed(outcome, 0)
    assert printed(outcome, 1) == ""  # the budget is spent
    assert "widgets" not in outcome.notebook.metadata
    assert len(str(outcome.notebook)) < 10**5


def test_an_error_message_of_megabytes_is_kept_short():
    failure = Failure.raised("E" * 10**6, "x" * 10**7)
    assert len(failure.error_name) == len(failure.error_value) == MAX_ERROR_CHARS


def test_a_reply_over_the_cap_times_its_cell_out_then_the_kernel_is_reached_again(tmp_path):
    # The shell channel dropped: the cell's reply never comes, so it times out (the kernel
    # still answers its interrupt), and the cells after it run on new sockets.
    over = max_frame_bytes(10**6) + 10**6
    send_reply = (
        "kernel = get_ipython().kernel\n"
        "kernel.session.send(kernel.shell_stream, 'execute_reply',\n"
        f"    {{'status': 'ok', 'x': 'y' * {over}}}, parent=kernel.get_parent('shell'),\n"
        "    ident=kernel._shell_parent_ident.get())")
    outcome = run(tmp_path, answers("X", 1), cell(send_reply), cell("pass", "X_test"),
                  cell_timeout=3, output_bytes=10**6)
    assert TIMEOUT_ERROR in enames(outcome, 1)
    assert "output passed 1 MB" in printed(outcome, 1)
    assert outcome.cell_timeouts == 1 and outcome.end is RunEnd.FINISHED
    assert answer(outcome, "X")["value"] == 1
