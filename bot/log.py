"""Logging set-up, called once by the launcher."""

import logging

_FORMAT = "%(asctime)s %(levelname)-8s %(name)s: %(message)s"


def setup_logging(level: str) -> None:
    logging.basicConfig(level=level.upper(), format=_FORMAT, force=True)
    # discord.py's gateway chatter is useful only when debugging the gateway itself.
    if level.upper() != "DEBUG":
        logging.getLogger("discord").setLevel(logging.WARNING)
        logging.getLogger("discord.client").setLevel(logging.INFO)
