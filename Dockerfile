# One image for every batchline service: worker, beat, flower and the provider emulator.
FROM python:3.11-slim
RUN pip install --no-cache-dir uv
WORKDIR /app
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --locked --no-dev --extra flower --no-install-project
COPY batchline ./batchline
RUN uv sync --locked --no-dev --extra flower
ENV PATH="/app/.venv/bin:$PATH" PYTHONUNBUFFERED=1
# Workers run as an unprivileged user.
RUN useradd --create-home batchline
USER batchline
CMD ["celery", "-A", "batchline.worker", "worker", "-E", "--loglevel=INFO"]
