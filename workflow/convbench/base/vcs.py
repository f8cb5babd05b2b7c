"""The code version behind a result: the git commit of the workflow's checkout."""

import subprocess


def git_commit(directory="."):
    """The commit checked out in `directory`, marked when files differ from it; None outside git."""

    def git(*args):
        try:
            return subprocess.run(["git", *args], cwd=directory, capture_output=True, text=True, timeout=10,
                                  check=True).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return None

    commit = git("rev-parse", "HEAD")
    if commit and git("status", "--porcelain"):
        return f"{commit} (with uncommitted changes)"
    return commit
