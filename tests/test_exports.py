"""The public surface: everything in __all__ exists, is exported once, and nothing private leaks."""

from __future__ import annotations

import aleph_trio
import aleph_trio.protocol


def test_all_matches_public_names() -> None:
    public = {
        name for name in vars(aleph_trio) if not name.startswith("_") or name == "__version__"
    }
    modules = {name for name in public if type(getattr(aleph_trio, name)).__name__ == "module"}
    assert set(aleph_trio.__all__) == public - modules
    assert len(aleph_trio.__all__) == len(set(aleph_trio.__all__))


def test_the_public_names_are_the_documented_ones() -> None:
    """What embedding programs and clients import; a rename or a removal is a breaking change."""
    import aleph_trio.client

    assert sorted(aleph_trio.__all__) == [
        "AlephError",
        "Client",
        "ClientEvent",
        "Config",
        "ConfigError",
        "ErrorCode",
        "Gateway",
        "Tool",
        "ToolContext",
        "ToolFailed",
        "WallClock",
        "__version__",
        "load_config",
        "open_client",
        "open_gateway",
        "serve_gateway",
    ]
    assert sorted(aleph_trio.client.__all__) == [
        "Client",
        "ClientEvent",
        "ConnectionLost",
        "open_client",
        "open_stream_client",
    ]
    for name in aleph_trio.client.__all__:
        assert getattr(aleph_trio.client, name) is not None


def test_protocol_package_imports_no_trio() -> None:
    """The JSON-RPC core stays sans-IO: no module in it imports trio (or anything that does)."""
    import ast
    from pathlib import Path

    package = Path(aleph_trio.protocol.__file__).parent
    for source in package.glob("*.py"):
        tree = ast.parse(source.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""] if node.level == 0 else []
                assert node.level <= 1, f"{source.name} imports from outside protocol/"
            else:
                continue
            for name in names:
                assert not name.startswith(("trio", "aleph_trio")), f"{source.name} imports {name}"
