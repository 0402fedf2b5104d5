"""Student ids: one per student folder, unique across everything OUT holds.

An id names the student's files in OUT (feedback, graded notebook, gradebook rows), so two
folders must never share one, not even on a file system blind to letter case, and a new
folder must never take the id of a student OUT already holds: it would replace their row
and delete their files. The rule:

- a folder OUT has seen before (the journal keeps each id's original folder name) keeps
  its id: a resubmission;
- otherwise the id is the folder name, unless that name cannot name a file (a path
  separator, a control character: made safe, always with a suffix), holds a character
  outside the allow-list below (made safe the same way, and graded), or its id would equal
  another student's but for letter case or Unicode form (in this batch or in OUT): then
  the id gets a suffix, a short digest of the original folder name, e.g.
  `honest_right-3f9a1c`, and the student's row says why.

An id is built from an allow-list, not filtered: letters and digits of any script, the
marks that compose them, and `_ - . @ + =` (none means anything in HTML or a JavaScript
string; `+` is in e-mail addresses; a leading `=` is neutralised in grades.csv), not
starting with `.` or `-`, at most MAX_ID_LENGTH characters. It lands in places that do
not escape it: nbgrader's formgrader writes the student id into its pages' HTML and
JavaScript unescaped (`var student_id = "{{ student_id
}}"`, its Jinja environment has no autoescape), where a folder named `x";fetch(...);"`
would run as the instructor on their Jupyter server; nbgrader's commands take it as an
argument, where `-x` would be an option; and file names, URLs and CSV cells take it too.

Among new folders that want the same id, the one spelled most plainly gets it (a safe
name, in Unicode's composed form, in lower case; then the first by code points): the
outcome does not depend on the order the folders were listed in.
"""

import hashlib
import unicodedata
from dataclasses import dataclass

SUFFIX_DIGITS = 6  # of the digest; more only if even that collides
MAX_ID_LENGTH = 64  # before the suffix: a file name, a URL path part, a gradebook key
ID_PUNCTUATION = frozenset("_-.@+=")
ID_CATEGORIES = ("L", "N", "M")  # letters, digits, combining marks (first letter)


@dataclass(frozen=True)
class StudentId:
    student_id: str
    note: str | None = None  # why the id is not the folder name, for the student's row


def assign_ids(folder_names, known=None):
    """folder name -> StudentId for every name, given `known`: id -> original folder name
    of each student OUT already holds."""
    known = known or {}
    holder = {}  # id key -> the folder name holding it
    for student_id, folder in sorted(known.items()):
        holder.setdefault(id_key(student_id), folder)
    known_by_folder = {folder: student_id for student_id, folder in known.items()}
    assigned = {}
    for name in sorted(set(folder_names), key=_claim_order):
        known_id = known_by_folder.get(name)
        if known_id is not None and holder.get(id_key(known_id)) == name:
            assigned[name] = StudentId(known_id)
            continue
        assigned[name] = _new_id(name, holder)
        holder[id_key(assigned[name].student_id)] = name
    return assigned


def _claim_order(name):
    return (is_unsafe_name(name), not is_plain_id(name),
            name != unicodedata.normalize("NFC", name),
            name != name.casefold(), name)


def _new_id(name, holder):
    if is_unsafe_name(name):
        return StudentId(_suffixed(made_safe(name), name, holder))
    if not is_plain_id(name):
        student_id = _suffixed(made_safe(name), name, holder)
        return StudentId(student_id, f"the folder name {name!r} holds characters a student id"
                         " may not (only letters, digits and _ - . @ + =, not first . or -), so it"
                         f" was graded as {student_id!r}")
    if holder.get(id_key(name), name) == name:
        return StudentId(name)
    student_id = _suffixed(name, name, holder)
    return StudentId(student_id, f"the folder name {name!r} differs from another student's only"
                     " in letter case or character encoding, which some file systems treat"
                     f" as the same name, so it was graded as {student_id!r}")


def _suffixed(base, name, holder):
    """`base` with a digest of the folder name, long enough to be free."""
    digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()
    for digits in range(SUFFIX_DIGITS, len(digest) + 1, 2):
        student_id = f"{base}-{digest[:digits]}"
        if holder.get(id_key(student_id), name) == name:
            return student_id
    raise ValueError(f"no free id for the folder {name!r}")  # 2**256 collisions: never


def id_key(student_id):
    """What two ids must not share: equal but for letter case or Unicode form, they would
    name the same file on some file systems."""
    return unicodedata.normalize("NFC", student_id).casefold()


def is_unsafe_name(name):
    return any(_is_unsafe_character(char) for char in name)


def _is_unsafe_character(char):
    # Control characters, and lone surrogates (undecodable bytes in a folder name).
    return char in "/\\" or unicodedata.category(char) in ("Cc", "Cs")


def is_plain_id(name):
    """Whether `name` is an id as it is: allow-listed characters, a plain start, short."""
    return (0 < len(name) <= MAX_ID_LENGTH and name[0] not in ".-"
            and all(_is_id_character(char) for char in name))


def _is_id_character(char):
    return char in ID_PUNCTUATION or unicodedata.category(char)[0] in ID_CATEGORIES


def made_safe(name):
    """`name` with every character outside the allow-list as `_`, cut to MAX_ID_LENGTH, a
    plain start (the suffix that follows makes it unique)."""
    safe = "".join(char if _is_id_character(char) else "_" for char in name)
    return ("_" + safe.lstrip(".-") if safe[:1] in (".", "-") else safe)[:MAX_ID_LENGTH] or "_"
