"""batchline: LLM requests through the providers' batch APIs, on Celery workers with Redis."""
