"""Skills (PROTOCOL §15): installing from folders, archives and git repositories, refusing unsafe
sources without leaving anything behind, markdown skills, and what agents are offered.

Everything is real: folders and archives written to temp dirs, ``git`` run as a subprocess on a
repository made in the test, a loopback HTTP server standing in for the LLM provider.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import stat
import subprocess
import tarfile
import zipfile
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
import trio
import trio.testing

from aleph_trio import Client, Config, Gateway, open_gateway
from aleph_trio.auth import Principal
from aleph_trio.kernel import AgentConfig, ProviderConfig, SkillsConfig
from aleph_trio.protocol import AlephError
from llmserver import LLMServer, Reply, serve_llm, sse
from runhelp import run_events, start

SKILL_MD = """---
name: {name}
description: {description}
license: MIT
metadata:
  author: someone
---
# {name}

Step one: {body}
"""


def skill_text(name: str, description: str = "Brew tea well.", body: str = "boil water") -> str:
    return SKILL_MD.format(name=name, description=description, body=body)


def make_skill(folder: Path, name: str, **kwargs: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "SKILL.md").write_text(skill_text(name, **kwargs))
    (folder / "notes").mkdir(exist_ok=True)
    (folder / "notes" / "steps.md").write_text("1. warm the pot\n")
    script = folder / "run.sh"
    script.write_text("#!/bin/sh\necho tea\n")
    script.chmod(0o755)
    return folder


def skills_dir(data_dir: Path) -> Path:
    return data_dir / "skills"


def left_in(data_dir: Path) -> list[str]:
    """Everything in the skills folder (staging folders included); made by the first install."""
    folder = skills_dir(data_dir)
    return sorted(os.listdir(folder)) if folder.exists() else []


async def refused(client: Client, params: dict[str, object]) -> AlephError:
    with pytest.raises(AlephError) as info:
        await client.call("skills.install", params)
    assert info.value.code == -32602, info.value
    return info.value


# --- installing ------------------------------------------------------------------------------


async def test_install_from_a_folder(client: Client, data_dir: Path, tmp_path: Path) -> None:
    source = make_skill(tmp_path / "src" / "tea", "tea")
    (source / ".git").mkdir()
    (source / ".git" / "config").write_text("[core]\n")
    result = await client.call("skills.install", {"name": "tea", "source": str(source)})
    target = skills_dir(data_dir) / "tea"
    assert result == {"installed": True, "name": "tea", "path": str(target)}
    assert (target / "SKILL.md").read_text() == skill_text("tea")
    assert (target / "notes" / "steps.md").read_text() == "1. warm the pot\n"
    assert os.stat(target / "run.sh").st_mode & 0o111  # still executable
    assert not (target / ".git").exists()  # version-control metadata is not part of a skill
    listed = (await client.call("skills.list"))["skills"]
    assert listed == [
        {
            "name": "tea",
            "description": "Brew tea well.",
            "source": str(source),
            "path": str(target),
            "enabled": True,
        }
    ]
    assert left_in(data_dir) == ["tea"]


def zip_of(folder: Path, archive: Path, *, prefix: str = "") -> Path:
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(folder.rglob("*")):
            info = zipfile.ZipInfo(prefix + path.relative_to(folder).as_posix())
            info.external_attr = (path.stat().st_mode & 0xFFFF) << 16
            if path.is_dir():
                info.filename += "/"
                zf.writestr(info, b"")
            else:
                zf.writestr(info, path.read_bytes())
    return archive


def tar_of(folder: Path, archive: Path, *, prefix: str = "") -> Path:
    with tarfile.open(archive, "w:gz") as tf:
        tf.add(folder, arcname=prefix or ".")
    return archive


@pytest.mark.parametrize(
    ("suffix", "pack", "prefix"),
    [
        (".zip", zip_of, ""),
        (".zip", zip_of, "tea-main/"),
        (".tar.gz", tar_of, ""),
        (".tgz", tar_of, "tea-main"),
    ],
)
async def test_install_from_an_archive(
    client: Client,
    data_dir: Path,
    tmp_path: Path,
    suffix: str,
    pack: Callable[..., Path],
    prefix: str,
) -> None:
    """At its top, or in its one folder (as archives of a repository are made)."""
    source = make_skill(tmp_path / "src", "tea")
    archive = pack(source, tmp_path / f"tea{suffix}", prefix=prefix)
    result = await client.call("skills.install", {"name": "tea", "source": str(archive)})
    target = skills_dir(data_dir) / "tea"
    assert result["path"] == str(target)
    assert (target / "SKILL.md").read_text() == skill_text("tea")
    assert (target / "notes" / "steps.md").read_text() == "1. warm the pot\n"
    assert os.stat(target / "run.sh").st_mode & 0o111
    [listed] = (await client.call("skills.list"))["skills"]
    assert listed["source"] == str(archive) and listed["enabled"] is True
    assert left_in(data_dir) == ["tea"]


def git(*args: str, cwd: Path) -> None:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.invalid",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.invalid",
        "GIT_CONFIG_GLOBAL": os.devnull,
    }
    subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True, timeout=30)


def git_repo(folder: Path) -> str:
    git("init", "-q", "-b", "main", cwd=folder)
    git("add", "-A", cwd=folder)
    git("commit", "-q", "-m", "skill", cwd=folder)
    return folder.as_uri()


async def test_install_from_a_local_git_repository(
    client: Client, data_dir: Path, tmp_path: Path
) -> None:
    repo = make_skill(tmp_path / "repo", "tea", description="From git.")
    url = git_repo(repo)
    assert url.startswith("file://")
    result = await client.call("skills.install", {"name": "tea", "source": url})
    target = Path(result["path"])
    assert (target / "SKILL.md").read_text() == skill_text("tea", description="From git.")
    assert (target / "notes" / "steps.md").exists()
    assert not (target / ".git").exists()
    [listed] = (await client.call("skills.list"))["skills"]
    assert listed["source"] == url and listed["description"] == "From git."
    assert left_in(data_dir) == ["tea"]


async def test_a_git_repository_holding_a_link_is_refused(
    client: Client, data_dir: Path, tmp_path: Path
) -> None:
    repo = make_skill(tmp_path / "repo", "tea")
    (repo / "secrets").symlink_to("/etc/passwd")
    error = await refused(client, {"name": "tea", "source": git_repo(repo)})
    assert "'secrets' is a link" in error.message
    assert left_in(data_dir) == []


async def test_a_git_url_that_is_no_repository_is_refused(
    client: Client, data_dir: Path, tmp_path: Path
) -> None:
    missing = (tmp_path / "nothing-here").as_uri()
    error = await refused(client, {"name": "tea", "source": missing})
    assert "git clone of" in error.message and "failed" in error.message
    assert left_in(data_dir) == []


@pytest.fixture
async def silent_server(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[int]:
    """A TCP listener on loopback that accepts and never answers (a git daemon that hangs)."""
    monkeypatch.setenv("GIT_ALLOW_PROTOCOL", "file:git")  # conftest allows only file://
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    held: list[trio.SocketStream] = []

    async def accept() -> None:
        while True:
            held.append(await listeners[0].accept())

    async with trio.open_nursery() as nursery:
        nursery.start_soon(accept)
        yield listeners[0].socket.getsockname()[1]
        nursery.cancel_scope.cancel()
    for stream in [*held, *listeners]:
        await stream.aclose()


async def test_a_clone_past_its_deadline_is_stopped_and_cleaned_up(
    data_dir: Path, silent_server: int, patient_clock: trio.testing.MockClock
) -> None:
    config = Config(skills=SkillsConfig(git_timeout_s=30))
    async with open_gateway(config, data_dir=data_dir) as gw, gw.connect() as client:
        url = f"git://127.0.0.1:{silent_server}/tea.git"
        with pytest.raises(AlephError) as info:
            await client.call("skills.install", {"name": "tea", "source": url})
        assert info.value.code == -32005
        assert "did not finish within 30 s" in info.value.message
        assert left_in(data_dir) == []
        assert not processes_mentioning(url)


async def test_a_cancelled_install_leaves_nothing(
    data_dir: Path, silent_server: int, patient_clock: trio.testing.MockClock
) -> None:
    async with open_gateway(Config(), data_dir=data_dir) as gw:
        url = f"git://127.0.0.1:{silent_server}/tea.git"
        with trio.move_on_after(5):
            await gw.skills.install("tea", url)
        assert left_in(data_dir) == []  # the staging folder went with the cancelled call
        assert not processes_mentioning(url)  # and git with it


def processes_mentioning(text: str) -> list[str]:
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        with contextlib.suppress(OSError):
            if text.encode() in cmdline.read_bytes():
                found.append(cmdline.parent.name)
    return found


async def test_leftovers_of_a_stopped_install_are_removed_at_start(data_dir: Path) -> None:
    staging = skills_dir(data_dir) / ".staging-0123456789abcdef" / "tree"
    make_skill(staging, "tea")
    async with open_gateway(Config(), data_dir=data_dir) as gw, gw.connect() as client:
        assert left_in(data_dir) == []
        assert (await client.call("skills.list"))["skills"] == []


# --- refusing unsafe sources -----------------------------------------------------------------


def zip_with(archive: Path, members: list[tuple[str, bytes, int]]) -> Path:
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("SKILL.md", skill_text("tea"))
        for name, data, mode in members:
            info = zipfile.ZipInfo(name)
            info.external_attr = mode << 16
            zf.writestr(info, data)
    return archive


def tar_with(archive: Path, members: list[tarfile.TarInfo]) -> Path:
    with tarfile.open(archive, "w:gz") as tf:
        data = skill_text("tea").encode()
        info = tarfile.TarInfo("SKILL.md")
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
        for member in members:
            tf.addfile(member, io.BytesIO(b"x" * member.size) if member.isfile() else None)
    return archive


def tar_member(
    name: str, kind: bytes = tarfile.REGTYPE, *, size: int = 1, link: str = ""
) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.size = size if kind == tarfile.REGTYPE else 0
    info.linkname = link
    return info


REGULAR = stat.S_IFREG | 0o644
UNSAFE: dict[str, tuple[Callable[[Path], Path], str]] = {
    "zip-traversal": (
        lambda d: zip_with(d / "a.zip", [("../escaped.md", b"x", REGULAR)]),
        "points outside the skill folder",
    ),
    "zip-deep-traversal": (
        lambda d: zip_with(d / "a.zip", [("notes/../../escaped.md", b"x", REGULAR)]),
        "points outside the skill folder",
    ),
    "zip-absolute": (
        lambda d: zip_with(d / "a.zip", [(str(d / "escaped.md"), b"x", REGULAR)]),
        "has an absolute path",
    ),
    "zip-symlink": (
        lambda d: zip_with(d / "a.zip", [("passwd", b"/etc/passwd", stat.S_IFLNK | 0o777)]),
        "is a link",
    ),
    "zip-backslash": (
        lambda d: zip_with(d / "a.zip", [("..\\escaped.md", b"x", REGULAR)]),
        "backslash",
    ),
    "tar-traversal": (
        lambda d: tar_with(d / "a.tar.gz", [tar_member("../escaped.md")]),
        "points outside the skill folder",
    ),
    "tar-absolute": (
        lambda d: tar_with(d / "a.tgz", [tar_member(str(d / "escaped.md"))]),
        "has an absolute path",
    ),
    "tar-symlink": (
        lambda d: tar_with(
            d / "a.tgz", [tar_member("passwd", tarfile.SYMTYPE, link="/etc/passwd")]
        ),
        "is a link",
    ),
    "tar-hardlink": (
        lambda d: tar_with(
            d / "a.tgz", [tar_member("passwd", tarfile.LNKTYPE, link="/etc/passwd")]
        ),
        "is a link",
    ),
    "tar-device": (
        lambda d: tar_with(d / "a.tgz", [tar_member("null", tarfile.CHRTYPE)]),
        "is not a regular file or folder",
    ),
    "tar-fifo": (
        lambda d: tar_with(d / "a.tgz", [tar_member("pipe", tarfile.FIFOTYPE)]),
        "is not a regular file or folder",
    ),
}


@pytest.mark.parametrize("case", sorted(UNSAFE))
async def test_unsafe_archives_are_refused_and_leave_no_trace(
    client: Client, data_dir: Path, tmp_path: Path, case: str
) -> None:
    build, why = UNSAFE[case]
    archive = build(tmp_path)
    error = await refused(client, {"name": "tea", "source": str(archive)})
    assert why in error.message
    assert error.data is not None and error.data["errors"][0]["path"] == "$.source"
    assert left_in(data_dir) == []
    assert not (tmp_path / "escaped.md").exists()
    assert not (skills_dir(data_dir).parent / "escaped.md").exists()
    assert (await client.call("skills.list"))["skills"] == []


SMALL = Config(skills=SkillsConfig(max_bytes=64 * 1024, max_files=20))


async def test_a_zip_bomb_is_refused_by_its_declared_size(data_dir: Path, tmp_path: Path) -> None:
    archive = tmp_path / "bomb.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("SKILL.md", skill_text("tea"))
        zf.writestr("zeros.bin", b"\0" * (8 * 1024 * 1024))  # 8 MiB in a few kB
    assert archive.stat().st_size < 64 * 1024
    async with open_gateway(SMALL, data_dir=data_dir) as gw, gw.connect() as client:
        error = await refused(client, {"name": "tea", "source": str(archive)})
    assert "declares" in error.message and "65536" in error.message
    assert left_in(data_dir) == []


async def test_a_zip_lying_about_its_sizes_is_refused(data_dir: Path, tmp_path: Path) -> None:
    """Its headers say 10 bytes; the data is 8 MiB of zeros. Reading stops at the size declared
    (which passed the limit check), the data does not match, and the archive is refused."""
    archive = tmp_path / "liar.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("SKILL.md", skill_text("tea"))
        zf.writestr("zeros.bin", b"\0" * (8 * 1024 * 1024))
    raw = bytearray(archive.read_bytes())
    # patch the uncompressed size of zeros.bin in its local header and in the central directory
    for signature, offset in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
        start = 0
        while (start := raw.find(signature, start)) != -1:
            name_at = start + (30 if signature == b"PK\x03\x04" else 46)
            if raw[name_at : name_at + 9] == b"zeros.bin":
                raw[start + offset : start + offset + 4] = (10).to_bytes(4, "little")
            start += 4
    archive.write_bytes(bytes(raw))
    async with open_gateway(SMALL, data_dir=data_dir) as gw, gw.connect() as client:
        error = await refused(client, {"name": "tea", "source": str(archive)})
    assert "Bad CRC-32 for file 'zeros.bin'" in error.message
    assert left_in(data_dir) == []


async def test_a_tar_over_the_byte_limit_is_refused(data_dir: Path, tmp_path: Path) -> None:
    archive = tar_with(tmp_path / "big.tgz", [tar_member("zeros.bin", size=200 * 1024)])
    async with open_gateway(SMALL, data_dir=data_dir) as gw, gw.connect() as client:
        error = await refused(client, {"name": "tea", "source": str(archive)})
    assert "more than 65536 bytes" in error.message
    assert left_in(data_dir) == []


@pytest.mark.parametrize("suffix", [".zip", ".tgz"])
async def test_too_many_members_are_refused(data_dir: Path, tmp_path: Path, suffix: str) -> None:
    source = make_skill(tmp_path / "src", "tea")
    for i in range(30):
        (source / f"f{i}.txt").write_text("x")
    pack = zip_of if suffix == ".zip" else tar_of
    archive = pack(source, tmp_path / f"many{suffix}")
    async with open_gateway(SMALL, data_dir=data_dir) as gw, gw.connect() as client:
        error = await refused(client, {"name": "tea", "source": str(archive)})
        assert "more than 20 files and folders" in error.message
        folder_error = await refused(client, {"name": "tea", "source": str(source)})
        assert "more than 20 files and folders" in folder_error.message
    assert left_in(data_dir) == []


async def test_a_folder_holding_a_link_is_refused(
    client: Client, data_dir: Path, tmp_path: Path
) -> None:
    source = make_skill(tmp_path / "src", "tea")
    (source / "notes" / "passwd").symlink_to("/etc/passwd")
    error = await refused(client, {"name": "tea", "source": str(source)})
    assert "'notes/passwd' is a link" in error.message
    (source / "notes" / "passwd").unlink()
    outside = tmp_path / "private.txt"
    outside.write_text("secret")
    os.link(outside, source / "notes" / "copy.txt")
    error = await refused(client, {"name": "tea", "source": str(source)})
    assert "'notes/copy.txt' is a hard link" in error.message
    assert left_in(data_dir) == []


async def test_sources_without_a_valid_skill_are_refused(
    client: Client, data_dir: Path, tmp_path: Path
) -> None:
    empty = tmp_path / "empty"
    (empty / "docs").mkdir(parents=True)
    (empty / "README.md").write_text("hello")
    error = await refused(client, {"name": "tea", "source": str(empty)})
    assert "has no SKILL.md" in error.message

    no_description = tmp_path / "nodesc"
    no_description.mkdir()
    (no_description / "SKILL.md").write_text("---\nname: tea\n---\nbody\n")
    error = await refused(client, {"name": "tea", "source": str(no_description)})
    assert "no 'description'" in error.message

    no_front_matter = tmp_path / "plain"
    no_front_matter.mkdir()
    (no_front_matter / "SKILL.md").write_text("# Tea\n")
    error = await refused(client, {"name": "tea", "source": str(no_front_matter)})
    assert "does not start with front matter" in error.message

    other = make_skill(tmp_path / "coffee", "coffee")
    error = await refused(client, {"name": "tea", "source": str(other)})
    assert error.data is not None and error.data["errors"][0]["path"] == "$.name"
    assert "names the skill 'coffee'" in error.message
    assert left_in(data_dir) == []


@pytest.mark.parametrize(
    ("params", "path"),
    [
        ({"name": "../evil", "source": "/tmp"}, "$.name"),
        ({"name": ".hidden", "source": "/tmp"}, "$.name"),
        ({"name": "a/b", "source": "/tmp"}, "$.name"),
        ({"name": "tea", "source": "relative/folder"}, "$.source"),
        ({"name": "tea", "source": "/no/such/folder"}, "$.source"),
        ({"name": "tea", "source": "/no/such/archive.zip"}, "$.source"),
        ({"name": "tea"}, "$.source"),
    ],
)
async def test_bad_install_params(
    client: Client, data_dir: Path, params: dict[str, object], path: str
) -> None:
    error = await refused(client, params)
    assert error.data is not None and error.data["errors"][0]["path"] == path
    assert left_in(data_dir) == []


async def test_installing_over_a_skill_needs_replace(
    client: Client, data_dir: Path, tmp_path: Path
) -> None:
    first = make_skill(tmp_path / "v1", "tea", description="Version one.")
    second = make_skill(tmp_path / "v2", "tea", description="Version two.")
    (second / "notes" / "steps.md").unlink()
    await client.call("skills.install", {"name": "tea", "source": str(first)})
    error = await refused(client, {"name": "tea", "source": str(second)})
    assert error.data is not None and error.data["reason"] == "conflict"
    [listed] = (await client.call("skills.list"))["skills"]
    assert listed["description"] == "Version one."

    # a failed replacement keeps the old skill whole
    await refused(client, {"name": "tea", "source": str(tmp_path / "none"), "replace": True})
    assert (skills_dir(data_dir) / "tea" / "notes" / "steps.md").exists()

    await client.call("skills.install", {"name": "tea", "source": str(second), "replace": True})
    [listed] = (await client.call("skills.list"))["skills"]
    assert listed["description"] == "Version two."
    assert not (skills_dir(data_dir) / "tea" / "notes" / "steps.md").exists()
    assert left_in(data_dir) == ["tea"]


async def test_configured_folders_are_listed_and_installed_skills_come_first(
    data_dir: Path, tmp_path: Path
) -> None:
    extra = tmp_path / "extra"
    make_skill(extra / "tea", "tea", description="From the folder.")
    make_skill(extra / "coffee", "coffee", description="Coffee too.")
    make_skill(extra / "broken", "other-name")  # its SKILL.md names another: skipped
    config = Config(skills=SkillsConfig(paths=(str(extra),)))
    async with open_gateway(config, data_dir=data_dir) as gw, gw.connect() as client:
        listed = (await client.call("skills.list"))["skills"]
        assert [(s["name"], s["source"], s["enabled"]) for s in listed] == [
            ("coffee", str(extra), True),
            ("tea", str(extra), True),
        ]
        installed = make_skill(tmp_path / "src", "tea", description="Installed.")
        await client.call("skills.install", {"name": "tea", "source": str(installed)})
        listed = (await client.call("skills.list"))["skills"]
        assert [(s["name"], s["description"], s["enabled"]) for s in listed] == [
            ("tea", "Installed.", True),
            ("coffee", "Coffee too.", True),
            ("tea", "From the folder.", False),
        ]


# --- markdown skills -------------------------------------------------------------------------


async def test_markdown_skills_load_list_reload_unload(
    client: Client, gateway: Gateway, tmp_path: Path
) -> None:
    file = tmp_path / "haiku.md"
    file.write_text(skill_text("haiku", description="Write haiku.", body="count syllables"))
    folder = make_skill(tmp_path / "tea", "tea")
    assert await client.call("markdown_skills.load", {"path": str(file)}) == {
        "loaded": True,
        "name": "haiku",
    }
    assert (await client.call("markdown_skills.load", {"path": str(folder)}))["name"] == "tea"
    listed = (await client.call("markdown_skills.list"))["skills"]
    assert [(s["name"], s["description"], s["path"]) for s in listed] == [
        ("haiku", "Write haiku.", str(file)),
        ("tea", "Brew tea well.", str(folder)),
    ]
    first_loaded_at = listed[0]["loaded_at"]
    assert first_loaded_at.endswith("Z")

    file.write_text(skill_text("haiku", description="Write better haiku.", body="five seven five"))
    assert (await client.call("markdown_skills.list"))["skills"][0]["description"] == "Write haiku."
    assert await client.call("markdown_skills.reload", {"name": "haiku"}) == {"reloaded": True}
    [haiku, _] = (await client.call("markdown_skills.list"))["skills"]
    assert haiku["description"] == "Write better haiku."
    assert "five seven five" in await gateway.skills.read("haiku", None)
    assert await gateway.skills.read("tea", "notes/steps.md") == "1. warm the pot\n"

    assert await client.call("markdown_skills.unload", {"name": "haiku"}) == {"unloaded": True}
    assert [s["name"] for s in (await client.call("markdown_skills.list"))["skills"]] == ["tea"]
    for method in ("markdown_skills.reload", "markdown_skills.unload"):
        with pytest.raises(AlephError) as info:
            await client.call(method, {"name": "haiku"})
        assert info.value.code == -32004
        assert info.value.data == {"resource": "markdown_skill", "id": "haiku"}


async def test_bad_markdown_skills_are_refused(client: Client, tmp_path: Path) -> None:
    not_a_skill = tmp_path / "notes.md"
    not_a_skill.write_text("# just notes\n")
    other = tmp_path / "other" / "haiku.md"
    other.parent.mkdir()
    other.write_text(skill_text("haiku"))
    first = tmp_path / "haiku.md"
    first.write_text(skill_text("haiku"))
    text_file = tmp_path / "haiku.txt"
    text_file.write_text(skill_text("haiku"))
    await client.call("markdown_skills.load", {"path": str(first)})
    cases = [
        (str(not_a_skill), "does not start with front matter", None),
        ("relative.md", "give an absolute path", None),
        (str(tmp_path / "missing.md"), "there is nothing at", None),
        (str(text_file), "neither a .md file nor a folder", None),
        (str(tmp_path / "other"), "has no SKILL.md", None),
        (str(other), "is loaded from", "conflict"),
    ]
    for path, why, reason in cases:
        with pytest.raises(AlephError) as info:
            await client.call("markdown_skills.load", {"path": path})
        assert info.value.code == -32602
        assert why in info.value.message, path
        assert info.value.data is not None and info.value.data.get("reason") == reason

    first.write_text("no longer a skill")
    with pytest.raises(AlephError) as info:
        await client.call("markdown_skills.reload", {"name": "haiku"})
    assert info.value.code == -32602 and "stays as it was" in info.value.message
    [listed] = (await client.call("markdown_skills.list"))["skills"]
    assert listed["path"] == str(first)


async def test_loaded_markdown_skills_come_back_after_a_restart(
    data_dir: Path, tmp_path: Path
) -> None:
    kept = tmp_path / "haiku.md"
    kept.write_text(skill_text("haiku"))
    gone = tmp_path / "gone.md"
    gone.write_text(skill_text("gone"))
    async with open_gateway(Config(), data_dir=data_dir) as gw, gw.connect() as client:
        await client.call("markdown_skills.load", {"path": str(kept)})
        await client.call("markdown_skills.load", {"path": str(gone)})
    gone.unlink()
    async with open_gateway(Config(), data_dir=data_dir) as gw, gw.connect() as client:
        listed = (await client.call("markdown_skills.list"))["skills"]
        assert [(s["name"], s["path"]) for s in listed] == [("haiku", str(kept))]
        assert "boil water" in await gw.skills.read("haiku", None)


GUEST = Principal("guest", "guest-1", ("skills.*", "markdown_skills.*"), invitation_id="inv_1")


async def test_guests_may_list_and_reload_but_not_change(
    gateway: Gateway, client: Client, tmp_path: Path
) -> None:
    gateway.auth.guest_resolvers.append(lambda token: GUEST if token == "guest-token" else None)
    file = tmp_path / "haiku.md"
    file.write_text(skill_text("haiku"))
    await client.call("markdown_skills.load", {"path": str(file)})
    async with gateway.connect(token="guest-token") as guest:
        assert (await guest.call("skills.list"))["skills"] == []
        assert len((await guest.call("markdown_skills.list"))["skills"]) == 1
        assert await guest.call("markdown_skills.reload", {"name": "haiku"}) == {"reloaded": True}
        for method, params in [
            ("skills.install", {"name": "tea", "source": str(tmp_path)}),
            ("markdown_skills.load", {"path": str(file)}),
            ("markdown_skills.unload", {"name": "haiku"}),
        ]:
            with pytest.raises(AlephError) as info:
                await guest.call(method, params)
            assert info.value.code == -32002, method
    assert len((await client.call("markdown_skills.list"))["skills"]) == 1


# --- what agents get -------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def agent_gateway(llm: LLMServer, data_dir: Path) -> AsyncIterator[tuple[Gateway, Client]]:
    config = Config(
        providers={
            "local": ProviderConfig(kind="openai", base_url=llm.base_url, models=("m",)),
        },
        agents={
            "main": AgentConfig(model="local/m", system_prompt="You are terse."),
            "plain": AgentConfig(model="local/m", tools=("memory_*",)),
        },
    )
    async with open_gateway(config, data_dir=data_dir) as gw, gw.connect() as client:
        yield gw, client


def call_tool(call_id: str, name: str, arguments: dict[str, object]) -> list[str]:
    piece = {
        "index": 0,
        "id": call_id,
        "type": "function",
        "function": {"name": name, "arguments": json.dumps(arguments)},
    }
    return sse(
        {"choices": [{"index": 0, "delta": {"tool_calls": [piece]}, "finish_reason": None}]},
        {"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]},
    )


def say(text: str) -> list[str]:
    return sse({"choices": [{"index": 0, "delta": {"content": text}, "finish_reason": "stop"}]})


async def test_an_agent_sees_the_skills_and_reads_one(data_dir: Path, tmp_path: Path) -> None:
    async with serve_llm() as llm, agent_gateway(llm, data_dir) as (_gw, client):
        source = make_skill(tmp_path / "src", "tea", description="Brew tea well.")
        (source / "notes" / "steps.md").write_text("1. warm the pot\n2. steep 3 minutes\n")
        await client.call("skills.install", {"name": "tea", "source": str(source)})
        haiku = tmp_path / "haiku.md"
        haiku.write_text(skill_text("haiku", description="Write haiku.", body="five seven five"))
        await client.call("markdown_skills.load", {"path": str(haiku)})
        (tmp_path / "outside.txt").write_text("not for agents")
        llm.script += [
            Reply(parts=call_tool("c1", "read_skill", {"name": "tea"})),
            Reply(parts=call_tool("c2", "read_skill", {"name": "tea", "file": "notes/steps.md"})),
            Reply(
                parts=call_tool("c3", "read_skill", {"name": "tea", "file": "../../../outside.txt"})
            ),
            Reply(parts=call_tool("c4", "read_skill", {"name": "haiku", "file": "x.md"})),
            Reply(parts=call_tool("c5", "read_skill", {"name": "coffee"})),
            Reply(parts=say("Done.")),
        ]
        run_id = await start(client, "make tea")
        events = await run_events(client, run_id)
        assert events[-1].topic == "agent.completed"

        first = llm.requests[0].body
        system = first["messages"][0]["content"]
        assert system.startswith("You are terse.\n\n")
        assert "- haiku: Write haiku.\n- tea: Brew tea well." in system
        assert "read_skill" in system
        offered = {t["function"]["name"]: t["function"] for t in first["tools"]}
        assert set(offered["read_skill"]["parameters"]["required"]) == {"name"}

        ends = {e.data["tool_call_id"]: e.data for e in events if e.topic == "stream.tool_end"}
        assert not ends["c1"]["is_error"]
        assert ends["c1"]["output"].startswith("# Skill: tea\n\n# tea\n\nStep one: boil water")
        assert "- notes/steps.md" in ends["c1"]["output"]
        assert "- run.sh" in ends["c1"]["output"]
        assert ".install.json" not in ends["c1"]["output"]
        assert ends["c2"]["output"] == "1. warm the pot\n2. steep 3 minutes\n"
        assert ends["c3"]["is_error"] and "not a path inside the skill" in ends["c3"]["output"]
        assert "not for agents" not in ends["c3"]["output"]
        assert ends["c4"]["is_error"] and "single file" in ends["c4"]["output"]
        assert ends["c5"]["is_error"] and "the skills are: haiku, tea" in ends["c5"]["output"]
        # the results went back to the model
        results = [m for m in llm.requests[1].body["messages"] if m["role"] == "tool"]
        assert "Step one: boil water" in results[0]["content"]


async def test_an_agent_without_the_tool_gets_no_skill_section(
    data_dir: Path, tmp_path: Path
) -> None:
    async with serve_llm() as llm, agent_gateway(llm, data_dir) as (_gw, client):
        haiku = tmp_path / "haiku.md"
        haiku.write_text(skill_text("haiku", description="Write haiku."))
        await client.call("markdown_skills.load", {"path": str(haiku)})
        llm.script += [Reply(parts=say("ok")), Reply(parts=say("ok")), Reply(parts=say("ok"))]
        run_id = await start(client, "hi", agent_id="plain")
        await run_events(client, run_id)
        assert "haiku" not in json.dumps(llm.requests[0].body)

        # unloading the last skill takes the section and the tool away for every agent
        run_id = await start(client, "hi")
        await run_events(client, run_id)
        assert "- haiku: Write haiku." in llm.requests[1].body["messages"][0]["content"]
        await client.call("markdown_skills.unload", {"name": "haiku"})
        run_id = await start(client, "hi again")
        await run_events(client, run_id)
        third = llm.requests[2].body
        assert "Skills hold instructions" not in third["messages"][0]["content"]
        assert "read_skill" not in {t["function"]["name"] for t in third["tools"]}


# --- SKILL.md front matter -------------------------------------------------------------------


def test_front_matter_forms() -> None:
    from aleph_trio.skills._skill_md import SkillFormatError, parse_skill_md

    doc = parse_skill_md(
        "\ufeff---\n"
        "name: 'pdf-tools'\n"
        "description: >\n"
        "  Fill PDF forms\n"
        "  and merge files.\n"
        "allowed-tools: [a, b]  # ignored\n"
        "metadata:\n"
        "  version: 2\n"
        "---\n\n# PDF\n\nUse it.\n"
    )
    assert (doc.name, doc.description, doc.body) == (
        "pdf-tools",
        "Fill PDF forms and merge files.",
        "# PDF\n\nUse it.",
    )
    doc = parse_skill_md('---\nname: a\ndescription: "say \\"hi\\" # not a comment"\n---\n')
    assert doc.description == 'say "hi" # not a comment'
    doc = parse_skill_md("---\nname: a\ndescription: plain text # a comment\n---\nbody")
    assert doc.description == "plain text" and doc.body == "body"
    for text, why in [
        ("---\nname: a\ndescription: b\n", "no closing"),
        ("---\nname: ../x\ndescription: b\n---\n", "is not 1-64"),
        ("---\nname: a\ndescription: b\nnot a pair\n---\n", "is not 'key: value'"),
        ("---\nname: a\ndescription: 'open\n---\n", "no closing quote"),
        ("---\nname: a\ndescription: " + "x" * 1025 + "\n---\n", "longer than 1024"),
    ]:
        with pytest.raises(SkillFormatError, match=why):
            parse_skill_md(text)


def test_git_urls_lose_their_credentials_when_shown() -> None:
    from aleph_trio.skills._install import public_source

    assert public_source("https://user:pw@example.com/x.git") == "https://example.com/x.git"
    assert public_source("file:///tmp/x") == "file:///tmp/x"
    assert public_source("/tmp/x.zip") == "/tmp/x.zip"


async def test_nothing_in_the_skills_dir_is_touched_by_a_failed_install(
    client: Client, data_dir: Path, tmp_path: Path
) -> None:
    """A refused install next to installed skills leaves them as they were, byte for byte."""
    await client.call(
        "skills.install", {"name": "tea", "source": str(make_skill(tmp_path / "ok", "tea"))}
    )
    before = {
        p.relative_to(data_dir): p.read_bytes()
        for p in skills_dir(data_dir).rglob("*")
        if p.is_file()
    }
    bad = zip_with(tmp_path / "bad.zip", [("../../tea/SKILL.md", b"owned", REGULAR)])
    await refused(client, {"name": "tea", "source": str(bad), "replace": True})
    after = {
        p.relative_to(data_dir): p.read_bytes()
        for p in skills_dir(data_dir).rglob("*")
        if p.is_file()
    }
    assert after == before
    shutil.rmtree(tmp_path / "ok")


async def test_a_new_skills_folder_in_the_config_reaches_the_next_run(
    data_dir: Path, tmp_path: Path
) -> None:
    extra = tmp_path / "extra"
    make_skill(extra / "tea", "tea", description="From the folder.")
    config_file = tmp_path / "config.toml"
    async with serve_llm() as llm:
        base = (
            f'[providers.local]\nkind = "openai"\nbase_url = "{llm.base_url}"\nmodels = ["m"]\n'
            '[agents.main]\nmodel = "local/m"\n'
        )
        config_file.write_text(base)
        llm.script += [Reply(parts=say("ok")), Reply(parts=say("ok"))]
        async with (
            open_gateway(config_path=config_file, data_dir=data_dir, watch_config=False) as gw,
            gw.connect() as client,
        ):
            await run_events(client, await start(client, "hi"))
            assert "read_skill" not in json.dumps(llm.requests[0].body)
            config_file.write_text(base + f'[skills]\npaths = ["{extra}"]\n')
            assert "skills.paths" in (await client.call("config.reload"))["changed_keys"]
            await run_events(client, await start(client, "hi again"))
            second = llm.requests[1].body
            assert "- tea: From the folder." in second["messages"][0]["content"]
            assert "read_skill" in {t["function"]["name"] for t in second["tools"]}


async def test_an_scp_like_address_is_cloned_with_git(client: Client, data_dir: Path) -> None:
    """``user@host:path`` goes to git (which the tests allow only local repositories, so it
    refuses the ssh transport without reaching anything)."""
    error = await refused(client, {"name": "tea", "source": "git@127.0.0.1:team/tea.git"})
    assert "git clone of git@127.0.0.1:team/tea.git failed" in error.message
    assert "ssh" in error.message
    assert left_in(data_dir) == []
