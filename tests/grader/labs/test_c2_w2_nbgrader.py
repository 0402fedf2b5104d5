"""The source notebook graded by plain nbgrader (`nbgrader autograde`, what formgrader's
Autograde button runs), without this grader around it: its hidden tests judge in the
kernel, so right answers get full marks and wrong ones lose their exercise.

Slow (nbgrader runs every cell of every notebook, training included): a handful of
students, in one nbgrader run.
"""

import sys
import warnings
from pathlib import Path

import corpus
import nbformat
import pytest
from nbgrader.api import Gradebook
from sqlalchemy.exc import SAWarning

from grader.course.course import create_course, run_nbgrader
from grader.labs.c2_w2 import LAB

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/grader: the corpus

# student -> (softmax typed in, model typed in, expected UNQ_C1, UNQ_C2). The wrong student
# carries one wrong answer per exercise (nbgrader scores the test cells independently), each
# the subtle kind: a softmax wrong only on very negative inputs, a model whose only fault is
# its output activation. Every notebook costs a whole training run: two of them.
RELU_OUTPUT = corpus.MODEL.replace("Dense(10, activation='linear'", "Dense(10, activation='relu'")
CLASS = {
    "right": (corpus.STABLE, corpus.MODEL, 50, 50),
    "tiny-constant-softmax-relu-output-layer": (
        "ez = np.exp(z)\na = ez / (np.sum(ez) + 1e-9)", RELU_OUTPUT, 0, 0),
}


@pytest.fixture(scope="module")
def autograded(released_lab, tmp_path_factory):
    """A course made from this repository's files, the class in submitted/, and nbgrader's
    own autograde run on it: the gradebook's scores per student and exercise."""
    course = create_course(tmp_path_factory.mktemp("plain-nbgrader"), LAB)
    release = nbformat.read(str(released_lab / LAB.notebook_name), as_version=4)
    for student, (softmax, model, *_) in CLASS.items():
        path = course.root / "submitted" / student / LAB.assignment / LAB.notebook_name
        path.parent.mkdir(parents=True)
        nbformat.write(corpus.answered(release, softmax, model), str(path))
    run_nbgrader(course, "generate_assignment", LAB.assignment, "--force")
    run_nbgrader(course, "autograde", LAB.assignment, "--force", timeout=1800)
    scores = {}
    with warnings.catch_warnings(), Gradebook(f"sqlite:///{course.root / 'gradebook.db'}",
                                              course_id=LAB.course_id) as gradebook:
        warnings.simplefilter("ignore", category=SAWarning)
        for student in CLASS:
            scores[student] = tuple(
                gradebook.find_grade(exercise.test_cell, Path(LAB.notebook_name).stem,
                                     LAB.assignment, student).score
                for exercise in LAB.exercises)
    return scores


@pytest.mark.parametrize("student", sorted(CLASS))
def test_plain_nbgrader_scores_each_exercise_right(autograded, student):
    *_, softmax_points, model_points = CLASS[student]
    assert autograded[student] == (softmax_points, model_points)
