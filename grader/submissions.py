"""Find the submissions of a class: from a folder (NAME.ipynb, NAME/ASSIGNMENT.ipynb, or nbgrader's collected
NAME/ASSIGNMENT/ASSIGNMENT.ipynb) or an LMS zip download (entries named STUDENT_..._FILE.ipynb, as nbgrader's
zip_collect expects them).

Nothing is lost and nothing is trusted: every student id is made folder-safe; two submissions that come to the
same id are both kept, the second under ID-2, and both say so; a symbolic link, an oversized archive member or an
entry without a student's name is kept as a refused submission with the reason; the assignment's own notebook is
preferred over other notebooks of the same student; archives inside the download are unpacked one level deep and
everything unpacked counts against one size budget.
"""

import io
import re
import stat
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

LMS_NAME = re.compile(r"^(?P<student>[^_/]+)_(?:[^/]*_)?(?P<file>[^/_]+\.ipynb)$")
MEMBER_BYTES = 64 << 20  # one notebook
ARCHIVE_BYTES = 2 << 30  # everything unpacked from one download, nested archives included
NESTING = 1  # archives inside the download are opened; archives inside those are not


@dataclass
class Submission:
    """One student's notebook, or why it is not graded."""

    student: str  # unique and folder-safe
    path: Path | None  # None when refused
    origin: str  # the file or archive entry as given
    notes: list[str] = field(default_factory=list)
    refused: str = ""
    receipt: dict[str, str] = field(default_factory=dict)  # nbgrader's submission files: feedback is released by them


# the files `nbgrader submit` puts beside the notebook; release_feedback needs both to name the student's feedback
RECEIPT = {
    "timestamp.txt": re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}[ T][0-9:.]{8,15}( ?[A-Za-z]{1,5}|[+-][0-9:]{4,5})?"),
    "submission_secret.txt": re.compile(r"[0-9a-f]{16,256}"),
}


def receipt(folder: Path) -> tuple[dict[str, str], list[str]]:
    """The exchange's receipt files of a collected submission folder that look as nbgrader writes them, and notes
    on the others (a student can write anything there: they are never executed, only copied beside the feedback)."""
    found, notes = {}, []
    for name, pattern in RECEIPT.items():
        path = folder / name
        if not path.exists():
            continue
        text = ""
        if path.is_file() and not path.is_symlink():
            with open(path, "rb") as handle:  # nbgrader writes a line; a student may have left anything
                text = handle.read(300).decode("ascii", "replace").strip()
        if pattern.fullmatch(text):
            found[name] = text
        else:
            notes.append(f"{name} is not as nbgrader writes it: ignored, so no feedback can be released to this "
                         "student through the exchange")
    return found, notes


def student_id(name: str) -> str:
    """A folder-safe student id: letters, digits, '_', '.' and '-', never starting with a punctuation mark."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name).strip("._-") or "unnamed"


def _unique(found: list[Submission]) -> list[Submission]:
    """Give each submission an id of its own, keeping both sides of a collision and noting it on both."""
    first: dict[str, Submission] = {}
    for submission in found:
        base = student_id(submission.student)
        wanted, k = base, 2
        while wanted in first:
            wanted, k = f"{base}-{k}", k + 1
        if wanted != base:
            other = first[base]
            submission.notes.append(f"id {base} is taken by {other.origin}: graded as {wanted}")
            other.notes.append(f"{submission.origin} also came to id {base}: graded as {wanted}")
        submission.student = wanted
        first[wanted] = submission
    return found


def find_submissions(folder: Path, assignment: str) -> list[Submission]:
    """The submissions in a folder: NAME.ipynb, or NAME/ with ASSIGNMENT.ipynb (else its only notebook), or
    NAME/ASSIGNMENT/ as `nbgrader collect` leaves them (the receipt files kept)."""
    found = []
    for path in sorted(folder.iterdir()):
        collected = path / assignment
        if path.is_dir() and not path.is_symlink() and collected.is_dir() and not collected.is_symlink():
            submission = Submission(path.name, None, f"{path.name}/{assignment}/{assignment}.ipynb")
            notebook = collected / f"{assignment}.ipynb"
            if notebook.is_symlink() or not notebook.is_file():
                submission.refused = f"no {assignment}.ipynb in the collected folder, or not a plain file: refused"
            else:
                submission.path = notebook
                submission.receipt, submission.notes = receipt(collected)
            found.append(submission)
        elif path.is_symlink():
            found.append(Submission(path.stem if path.suffix == ".ipynb" else path.name, None, path.name,
                                    refused="a symbolic link, not a file: refused"))
        elif path.is_file() and path.suffix == ".ipynb":
            found.append(Submission(path.stem, path, path.name))
        elif path.is_dir():
            notebooks = sorted(path.glob("*.ipynb"))
            if not notebooks:
                continue
            chosen = next((p for p in notebooks if p.name == f"{assignment}.ipynb"), notebooks[0])
            rest = [p.name for p in notebooks if p != chosen]
            submission = Submission(path.name, chosen, f"{path.name}/{chosen.name}",
                                    [f"not graded, also handed in: {', '.join(rest)}"] if rest else [])
            if chosen.is_symlink():
                submission.path, submission.refused = None, "a symbolic link, not a file: refused"
            found.append(submission)
    return _unique(found)


@dataclass
class _Member:
    student: str
    file: str
    origin: str
    data: bytes | None
    refused: str = ""


class _Budget:
    def __init__(self, total: int):
        self.left = total

    def take(self, size: int) -> bool:
        if size > self.left:
            return False
        self.left -= size
        return True


def _members(archive: zipfile.ZipFile, where: str, depth: int, budget: _Budget, owner: str | None = None):
    """Notebook members of `archive`, opening archives nested in it while `depth` allows."""
    for info in archive.infolist():
        if info.is_dir():
            continue
        base = info.filename.rsplit("/", 1)[-1]
        origin = f"{where}:{info.filename}"
        match = LMS_NAME.match(base)
        student = owner or (match["student"] if match else None)
        token = student or (base.split("_", 1)[0] if "_" in base else Path(base).stem)
        if stat.S_ISLNK(info.external_attr >> 16):
            yield _Member(token, base, origin, None, "a symbolic link in the archive: refused")
        elif base.endswith(".zip") and depth < NESTING:
            if not budget.take(info.file_size):
                yield _Member(token, base, origin, None, "over the archive's size limit: refused")
                continue
            try:
                inner = zipfile.ZipFile(io.BytesIO(archive.read(info)))
            except zipfile.BadZipFile as error:
                yield _Member(token, base, origin, None, f"a broken archive ({error}): refused")
                continue
            yield from _members(inner, origin, depth + 1, budget, token)
        elif base.endswith(".zip"):
            yield _Member(token, base, origin, None, "an archive inside an archive inside the download: not opened")
        elif base.endswith(".ipynb"):
            name = match["file"] if match and owner is None else base
            if student is None:
                yield _Member(Path(base).stem, base, origin, None, "not named STUDENT_..._FILE.ipynb: refused")
            elif info.file_size > MEMBER_BYTES or not budget.take(info.file_size):
                yield _Member(student, name, origin, None, f"over the size limit ({info.file_size} bytes): refused")
            else:
                yield _Member(student, name, origin, archive.read(info))


def collect_zip(archive: Path, assignment: str, target: Path) -> list[Submission]:
    """Unpack an LMS download's notebooks into `target`, one file per submission (never by the archive's paths)."""
    target.mkdir(parents=True, exist_ok=True)
    by_student: dict[str, list[_Member]] = {}
    with zipfile.ZipFile(archive) as z:
        for member in _members(z, archive.name, 0, _Budget(ARCHIVE_BYTES)):
            by_student.setdefault(member.student, []).append(member)
    found = []
    for student, members in by_student.items():
        usable = [m for m in members if not m.refused]
        own = [m for m in usable if m.file == f"{assignment}.ipynb"]
        graded = own or usable[:1]  # every copy of the assignment's notebook is kept (a resubmission, a clash)
        skipped = [m.file for m in usable if m not in graded]
        for member in graded:
            path = target / f"{len(found):05d}.ipynb"
            path.write_bytes(member.data)
            notes = [f"not graded, also handed in: {', '.join(skipped)}"] if skipped else []
            found.append(Submission(student, path, member.origin, notes))
        found += [Submission(m.student, None, m.origin, refused=m.refused) for m in members if m.refused]
    return _unique(found)
