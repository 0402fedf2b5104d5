"""Student ids unique across a batch and everything OUT holds (grader/intake/student_ids.py)."""

import hashlib
import itertools
import random

from grader.intake.student_ids import assign_ids, id_key


def suffixed(base, folder_name):
    return f"{base}-{hashlib.sha256(folder_name.encode()).hexdigest()[:6]}"


def ids(names, known=None):
    return {name: assigned.student_id for name, assigned in assign_ids(names, known).items()}


def test_plain_folder_names_are_the_ids():
    assert ids(["amy", "bob"]) == {"amy": "amy", "bob": "bob"}


def test_a_folder_never_takes_the_id_of_a_student_out_already_holds():
    known = {"honest_right": "honest_right", "victim_case": "victim_case"}
    assigned = assign_ids(["honest\\right", "VICTIM_CASE", "victim_case"], known)
    assert assigned["honest\\right"].student_id == suffixed("honest_right", "honest\\right")
    assert assigned["VICTIM_CASE"].student_id == suffixed("VICTIM_CASE", "VICTIM_CASE")
    assert "letter case" in assigned["VICTIM_CASE"].note
    assert "victim_case" not in assigned["VICTIM_CASE"].note  # nobody else's name is shown
    assert assigned["victim_case"].student_id == "victim_case"
    assert assigned["victim_case"].note is None


def test_the_same_folder_name_keeps_its_id_in_later_batches():
    first = ids(["honest\\right", "Alice", "alice"])
    known = {student_id: name for name, student_id in first.items()}
    assert ids(["Alice", "honest\\right"], known) == {name: first[name]
                                                       for name in ("Alice", "honest\\right")}
    # Even when the student that made it collide is gone, a suffixed id stays the same.
    assert ids(["Alice"], known) == {"Alice": first["Alice"]}


def test_a_made_safe_id_always_carries_a_suffix():
    # so that it never takes a plain id a real folder of that name would want later
    assert ids(["bob\n"]) == {"bob\n": suffixed("bob_", "bob\n")}


def test_the_ids_do_not_depend_on_the_order_folders_are_listed_in():
    names = ["Alice", "alice", "ALICE", "Jos\u00e9", "Jose\u0301", "a/b", "a_b", "a\\b", "zoe"]
    known = {"zoe": "zoe", "a_b-1": "elsewhere"}
    expected = ids(names, known)
    for order in itertools.islice(itertools.permutations(names), 0, None, 997):
        assert ids(list(order), known) == expected
    shuffled = names[:]
    random.Random(5).shuffle(shuffled)
    assert ids(shuffled, known) == expected
    keys = [id_key(student_id) for student_id in [*expected.values(), "a_b-1"]]
    assert len(set(keys)) == len(keys)  # unique even on a case-blind file system
    assert expected["alice"] == "alice" and expected["Jos\u00e9"] == "Jos\u00e9"


def test_rows_of_lookalike_ids_left_by_an_earlier_release_are_not_shared():
    # The first release could leave both `Bob` and `bob` in OUT (invalid rows): one keeps
    # its row; the other folder, graded again, gets an id of its own.
    known = {"Bob": "Bob", "bob": "bob"}
    assert ids(["Bob", "bob"], known) == {"Bob": "Bob", "bob": suffixed("bob", "bob")}


def test_ids_are_built_from_an_allow_list():
    # formgrader writes the id unescaped into HTML and a JavaScript string; nbgrader's
    # commands take it as an argument; so only letters, digits and _ - . @ + = pass as they are.
    hostile = ['x";fetch(location.origin+"api");"', "<img src=x onerror=alert(1)>", "-rf",
               ".hidden",
               "Anna Müller", "a" * 200, "semi;colon", "quote'd", "back`tick", "$(id)"]
    assigned = assign_ids(hostile + ["Zoë", "jo.doe@uni.edu", "李雷", "o_k-1"])
    for name in hostile:
        student_id = assigned[name].student_id
        assert student_id.startswith(student_id.lstrip(".-")), student_id
        assert not set(student_id) & set("\"'<>;`$() /\\&"), student_id
        assert len(student_id) <= 64 + 7
        assert "graded as" in assigned[name].note
    assert assigned["Anna Müller"].student_id == suffixed("Anna_Müller", "Anna Müller")
    for plain in ("Zoë", "jo.doe@uni.edu", "李雷", "o_k-1"):
        assert assigned[plain].student_id == plain and assigned[plain].note is None


def test_a_plain_name_keeps_its_id_against_a_name_that_is_made_the_same():
    # "a b" made safe is "a_b" (suffixed): the plain "a_b" is never displaced.
    for order in (["a b", "a_b"], ["a_b", "a b"]):
        assert ids(order)["a_b"] == "a_b"
        assert ids(order)["a b"] == suffixed("a_b", "a b")
