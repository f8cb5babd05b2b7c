"""Downloading one raw dataset file: mirrors in order, retries with backoff, verified before it lands.

pooch does the HTTP, hashing and retrying: it streams to a temporary file next to the target,
checks the hash and only then renames it into place; a mismatch deletes the download.
"""

import logging
import time
from pathlib import Path

from ..base.atomic import UMASK

log = logging.getLogger(__name__)

CHUNK_BYTES = 1 << 20


class DownloadError(RuntimeError):
    """Every mirror failed; the message lists each URL and why."""


class LogProgress:
    """pooch's progress-bar protocol (total, update, reset, close), written to the log every 10 %.

    A log file is read by people tailing it, so no carriage-return bars.
    """

    def __init__(self, name):
        self.name, self._total, self.done, self.next_report = name, 0, 0, 0.1

    @property
    def total(self):
        return self._total

    @total.setter
    def total(self, size):  # pooch sets it at the start of every attempt
        self._total, self.done, self.next_report = size, 0, 0.1

    def update(self, count):
        self.done += count
        if self.total and self.done >= self.next_report * self.total:
            log.info("%s: %d%% of %.1f MB", self.name, min(100, 100 * self.done // self.total), self.total / 1e6)
            self.next_report = (self.done * 10 // self.total + 1) / 10

    def reset(self):
        self.done = 0

    def close(self):
        pass


def can_heal(error):
    """Whether trying the same URL again may help: a timeout, a dropped connection, a server
    error (5xx) or rate limiting. A 404 or a wrong checksum will not change: next mirror."""
    import requests

    if isinstance(error, requests.exceptions.HTTPError):
        status = getattr(error.response, "status_code", None)
        return status is None or status >= 500 or status in (408, 429)
    return isinstance(error, (requests.exceptions.ConnectionError, requests.exceptions.Timeout,
                              requests.exceptions.ChunkedEncodingError))


def fetch_file(urls, known_hash, destination, *, retries=3, timeout=60):
    """Download `destination` from the first of `urls` that delivers a file with this hash
    ("sha256:<hex>", or "md5:<hex>" where a publisher gives only that).

    A failure that can heal (can_heal) is retried up to `retries` times per URL (waits of 1, 2,
    3 ... s); a permanent one (404, checksum mismatch) moves on to the next URL at once, so a wrong
    hash never downloads a large file four times. Raises DownloadError naming every URL and its
    last error.
    """
    import pooch
    import requests

    destination = Path(destination)
    errors = []
    for url in urls:
        log.info("fetching %s from %s (%s)", destination.name, url, known_hash)
        repository = pooch.create(
            path=destination.parent, base_url="", registry={destination.name: known_hash},
            urls={destination.name: url}, retry_if_failed=0,
        )
        for attempt in range(1 + retries):
            downloader = pooch.HTTPDownloader(progressbar=LogProgress(destination.name), timeout=timeout,
                                              chunk_size=CHUNK_BYTES)
            try:
                repository.fetch(destination.name, downloader=downloader)
            except (ValueError, requests.exceptions.RequestException) as error:
                if attempt < retries and can_heal(error):
                    log.warning("%s failed (%s). Will attempt the download again in %d s.", url, error, attempt + 1)
                    time.sleep(attempt + 1)
                    continue
                log.warning("%s failed: %s", url, error)
                errors.append(f"  {url}: {error}")
                break
            destination.chmod(0o666 & ~UMASK)  # pooch's temporary file was private (0600)
            log.info("%s verified (%s)", destination, known_hash)
            return destination
    raise DownloadError(
        f"could not fetch {destination} (expected {known_hash}); tried {len(urls)} URL(s):\n" + "\n".join(errors)
    )
