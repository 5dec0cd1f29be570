"""End-to-end tests: real Airflow 3 processes on PostgreSQL/SQLite against the local Automation runtime."""
