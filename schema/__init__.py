"""The shape of data: errors, events, SQLite tables and migrations, API and sync models.

Depends on nothing else in this project.
"""
