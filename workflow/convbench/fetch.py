"""Downloading one raw dataset file: mirrors in order, retries with backoff, verified before it lands.

pooch does the HTTP, hashing and retrying: it streams to a temporary file next to the target,
checks the hash and only then renames it into place; a mismatch deletes the download.
"""

import logging
from pathlib import Path

from .atomic import UMASK

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


def fetch_file(urls, known_hash, destination, *, retries=3, timeout=60):
    """Download `destination` from the first of `urls` that delivers a file with this hash
    ("sha256:<hex>", or "md5:<hex>" where a publisher gives only that).

    Each URL is tried 1 + `retries` times (waits of 1, 2, 3 ... s); a checksum mismatch counts
    as a failure of that attempt. Raises DownloadError naming every URL and its last error.
    """
    import pooch
    import requests

    destination = Path(destination)
    errors = []
    for url in urls:
        log.info("fetching %s from %s (%s)", destination.name, url, known_hash)
        repository = pooch.create(
            path=destination.parent,
            base_url="",
            registry={destination.name: known_hash},
            urls={destination.name: url},
            retry_if_failed=retries,
        )
        downloader = pooch.HTTPDownloader(progressbar=LogProgress(destination.name), timeout=timeout, chunk_size=CHUNK_BYTES)
        try:
            repository.fetch(destination.name, downloader=downloader)
        except (ValueError, requests.exceptions.RequestException) as error:
            log.warning("%s failed: %s", url, error)
            errors.append(f"  {url}: {error}")
            continue
        destination.chmod(0o666 & ~UMASK)  # pooch's temporary file was private (0600)
        log.info("%s verified (%s)", destination, known_hash)
        return destination
    raise DownloadError(
        f"could not fetch {destination} (expected {known_hash}); tried {len(urls)} URL(s):\n" + "\n".join(errors)
    )
