"""One router module per resource (FastAPI's full-stack template): ops, tagging, feedback, reports, models."""
