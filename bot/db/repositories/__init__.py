"""Repositories: every SQL statement Hearth runs. They take an ``AsyncSession`` and never commit."""
