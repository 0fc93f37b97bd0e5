"""Pure rules: no I/O, no database, no Discord. Tested without mocks."""
