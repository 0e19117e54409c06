-- Databases of the single-host stack (the server creates "airflow" itself from POSTGRES_DB).
CREATE DATABASE mlflow OWNER llmrec;
CREATE DATABASE warehouse OWNER llmrec;
