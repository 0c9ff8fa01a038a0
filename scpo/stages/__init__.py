"""The pipeline stages, one module and one `scpo <stage>` command each; they talk only through files."""
