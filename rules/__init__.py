"""gradlint's built-in rules, one module per rule (installed as `gradlint.rules`)."""
