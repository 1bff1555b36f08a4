"""The Jupyter kernel a study notebook runs in.

Kernel choice: the notebook must run on *this* interpreter (the project's
venv). The native ``python3`` kernelspec does so (jupyter_client substitutes
``sys.executable`` for a bare ``python``), unless a kernelspec named
``python3`` with an absolute path to another interpreter shadows it; then a
kernelspec ``h3lab`` for this interpreter is installed into ``sys.prefix``
(the venv, not the user's home) and used.

The kernel talks to the runner over local IPC sockets, not TCP
(``ipc_kernel_manager``).
"""

from __future__ import annotations

import os
import sys
from contextlib import suppress
from pathlib import Path

KERNEL_NAME = "h3lab"


def _runs_this_interpreter(argv0: str) -> bool:
    # jupyter_client.manager.format_kernel_cmd swaps these for sys.executable.
    native = {"python", f"python{sys.version_info[0]}", "python{}.{}".format(*sys.version_info[:2])}
    if argv0 in native:
        return True
    try:
        return Path(argv0).resolve() == Path(sys.executable).resolve()
    except OSError:
        return False


def ensure_kernel() -> str:
    """The name of a kernelspec that runs ``sys.executable`` (installing one if needed)."""
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    manager = KernelSpecManager()
    for name in ("python3", KERNEL_NAME):
        try:
            spec = manager.get_kernel_spec(name)
        except NoSuchKernel:
            continue
        if spec.argv and _runs_this_interpreter(spec.argv[0]):
            return name
    # python3 points at another interpreter: install ours into this venv.
    from ipykernel.kernelspec import install

    install(kernel_name=KERNEL_NAME, display_name="Python (h3lab)", prefix=sys.prefix)
    spec = KernelSpecManager().get_kernel_spec(KERNEL_NAME)
    if not spec.argv or not _runs_this_interpreter(spec.argv[0]):
        raise RuntimeError(
            f"kernelspec {KERNEL_NAME!r} resolves to {spec.resource_dir} ({spec.argv[:1]}), not to "
            f"{sys.executable}; remove that kernelspec (jupyter kernelspec remove {KERNEL_NAME})"
        )
    return KERNEL_NAME


def ipc_kernel_manager() -> type:
    """A kernel manager on local IPC (Unix) sockets instead of TCP.

    The kernel then listens on nothing reachable from the network, and
    ipykernel has no reason to warn "Kernel is running over TCP without
    encryption" at every study run (the warning is right for TCP: the fix is
    not to use TCP, not to hide the message).

    Each kernel's socket files get a name of their own in the temporary
    directory. jupyter_client's default, ``kernel-ipc-1`` ... ``-5`` in the
    working directory (the repository root for every study), is chosen by
    looking for free names: two kernels started at once -- two study runs,
    pytest-xdist workers -- took the same files and read each other's
    messages ("Invalid Signature", "Kernel didn't respond").
    """
    import glob
    import tempfile
    import uuid

    from jupyter_client import AsyncKernelManager
    from traitlets import CaselessStrEnum, default

    class IPCKernelManager(AsyncKernelManager):
        transport = CaselessStrEnum(["tcp", "ipc"], default_value="ipc", config=True)

        @default("ip")
        def _ip_default(self) -> str:
            if self.transport != "ipc":
                return str(super()._ip_default())
            name = f"h3lab-kernel-{uuid.uuid4().hex[:16]}-ipc"
            return os.path.join(tempfile.gettempdir(), name)

        async def _async_cleanup_resources(self, restart: bool = False) -> None:
            await super()._async_cleanup_resources(restart=restart)
            if not restart and self.transport == "ipc":
                # the files of every port, even ones the manager no longer lists
                for path in glob.glob(glob.escape(self.ip) + "-*"):
                    with suppress(OSError):
                        os.remove(path)

        # The async manager's public name is the coroutine itself (as jupyter_client's).
        cleanup_resources = _async_cleanup_resources

    return IPCKernelManager
