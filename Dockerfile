FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY jobs ./jobs
COPY providers ./providers
COPY worker.py enqueue.py batch.py rerank_runner.py ./
COPY examples ./examples
RUN pip install --no-cache-dir .
ENV PYTHONUNBUFFERED=1
CMD ["python", "worker.py"]
