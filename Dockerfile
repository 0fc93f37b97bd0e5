FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app

COPY pyproject.toml README.md ./
COPY bot ./bot
COPY alembic ./alembic
COPY alembic.ini ./
RUN pip install .

# Migrations first (they also run on start, but a failing migration should fail loudly here), then the bot.
CMD ["sh", "-c", "python -m bot db upgrade && exec python -m bot run"]
