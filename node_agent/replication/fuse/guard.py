"""Every failure of a FUSE handler becomes an errno (used by fusefs, data and namespace)."""

from __future__ import annotations

import errno
import functools
import logging
from collections.abc import Callable
from typing import Any, TypeVar

from mfusepy import FuseOSError

log = logging.getLogger(__name__)

T = TypeVar("T")


def guard(func: Callable[..., T]) -> Callable[..., T]:
    """An escaping exception must never take the mount down (the application would then
    write into the bare directory underneath). OSError -> its errno; anything else ->
    logged, EIO."""

    @functools.wraps(func)
    def wrapper(self: Any, *args: Any) -> T:
        try:
            return func(self, *args)
        except FuseOSError:
            raise
        except OSError as e:
            code = e.errno if isinstance(e.errno, int) and e.errno > 0 else errno.EIO
            raise FuseOSError(code) from None
        except Exception:
            log.exception("FUSE %s(%r) failed", func.__name__, args[:1])
            raise FuseOSError(errno.EIO) from None

    return wrapper
