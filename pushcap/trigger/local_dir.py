"""The folder writelocal captures go to, made when the daemon starts (never by loading config).

The default folder (/var/lib/pushcap/captures, below the systemd unit's StateDirectory) is
created level by level with mode 0750 (chmod after mkdir, which the umask trims): captures hold
traffic, for the service's user and group only. A configured folder is never created: config
already refused it if it does not exist (a typo must not become a new folder).
"""

from __future__ import annotations

import os

from pushcap import defaults
from pushcap.config.model import ConfigError
from pushcap.config.pcapdaemon import (
    LOCAL_DIR_FIX,
    TriggerSettings,
    check_local_dir,
    local_dir_error,
)


def prepare_local_dir(settings: TriggerSettings, src: str) -> None:
    """Check the writelocal folder and create the default one if it is missing; ConfigError
    (the same as `pushcap check` gives) if it cannot be used."""
    check_local_dir(settings, src)
    folder = settings.local_dir
    if not settings.write_local or not settings.local_dir_is_default or folder.is_dir():
        return
    missing = [level for level in (folder, *folder.parents) if not os.path.lexists(level)]
    try:
        for level in reversed(missing):
            try:
                level.mkdir(mode=defaults.TRIGGER_LOCAL_DIR_MODE)
            except FileExistsError:
                continue  # made meanwhile by someone else: theirs to set up
            level.chmod(defaults.TRIGGER_LOCAL_DIR_MODE)
    except OSError as exc:
        raise local_dir_error(src, folder, exc.strerror or exc) from None
    if not folder.is_dir():
        raise ConfigError(f"{src}: writelocal is on but {folder} is not a folder; "
                          f"{LOCAL_DIR_FIX}")
