"""Moving a one-api or new-api deployment here (manage.py import_oneapi); see importer.py."""
