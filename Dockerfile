# One image for the three services; the command picks the service. Only the product is in it
# (services and schemas, with their migrations, rulesets and policies): no development tooling.

# The scorer's compiled core (native/): a wheel built with Rust, installed below.
FROM python:3.11-slim AS native
RUN apt-get update -qq && apt-get install -y -qq --no-install-recommends curl gcc libc6-dev \
    && curl -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal
ENV PATH=/root/.cargo/bin:$PATH
COPY native /native
RUN pip install maturin && maturin build --release -m /native/Cargo.toml -o /wheels

FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1

WORKDIR /app
COPY pyproject.toml README.md ./
COPY schemas ./schemas
COPY services ./services
COPY deploy ./deploy
COPY --from=native /wheels /wheels
RUN pip install /wheels/*.whl . && useradd --system --no-create-home tierstream

USER tierstream
EXPOSE 8081 8082 8083
HEALTHCHECK --interval=5s --timeout=3s --retries=20 \
  CMD python -c "import os, urllib.request; urllib.request.urlopen(f'http://127.0.0.1:{os.environ.get(\"HEALTH_PORT\", \"8081\")}/healthz', timeout=2)"
CMD ["python", "-m", "services.ingest.main"]
