# One image for every fleet role: `automl db upgrade`, `automl worker`, and (later) `automl serve`.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app

COPY pyproject.toml README.md ./
COPY automl ./automl
COPY workers ./workers
COPY migrations ./migrations
RUN pip install --upgrade pip && pip install .

RUN useradd --create-home automl && mkdir -p /data/artifacts && chown automl /data/artifacts
USER automl
ENV AUTOML_ARTIFACT_ROOT=/data/artifacts

CMD ["automl", "--help"]
