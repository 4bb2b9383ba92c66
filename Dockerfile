# Trainboard's server and dashboard, one image for both (docker-compose.yml runs it
# twice: `trainboard-server ...` and `trainboard ui ...`).
#
# Nothing secret is baked in: the database password and the tokens reach the
# containers through the environment at run time (.env, see .env.example).

FROM python:3.11-slim AS build

ENV PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/trainboard
WORKDIR /src
COPY pyproject.toml README.md ./
COPY client client
COPY server server
COPY ui ui
# server + postgres + ui; never torch (a range would pull a multi-GB CUDA build).
RUN /opt/trainboard/bin/pip install --no-cache-dir '.[all]'


FROM python:3.11-slim

# GRPC_DNS_RESOLVER=native: gRPC resolves service names (`server`) through the C
# library, as every other program in the container does, not through its own c-ares.
ENV PATH=/opt/trainboard/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    GRPC_DNS_RESOLVER=native

# Only the installed packages travel from the build stage: no sources, no pip cache.
COPY --from=build /opt/trainboard /opt/trainboard
COPY docker/trainboard-server /usr/local/bin/trainboard-server
RUN chmod 0755 /usr/local/bin/trainboard-server \
    && groupadd --system --gid 10001 trainboard \
    && useradd --system --uid 10001 --gid trainboard --create-home \
        --home-dir /home/trainboard --shell /usr/sbin/nologin trainboard \
    && install -d -o trainboard -g trainboard -m 0700 /run/trainboard

# docker-compose.yml mounts a tmpfs on /run/trainboard (the tokens file) owned by
# this uid and gid.
USER 10001:10001
WORKDIR /home/trainboard

EXPOSE 6009 8501
CMD ["trainboard-server", "--host", "0.0.0.0", "--port", "6009"]
