"""Storage: models, engine and repositories. The only package that builds SQL."""
