# tsloth on an NVIDIA GPU: Node 20, the CUDA library built for sm_80-sm_90, the kernelspec, and a
# Jupyter server with the tsloth kernel.
#   docker build -t tsloth .
#   docker run --gpus all -p 8888:8888 -v $HOME/.cache/huggingface:/root/.cache/huggingface tsloth
FROM nvidia/cuda:13.0.0-devel-ubuntu24.04

ENV DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl gnupg python3 python3-pip python3-venv \
 && curl -fsSL https://deb.nodesource.com/setup_20.x | bash - \
 && apt-get install -y --no-install-recommends nodejs \
 && rm -rf /var/lib/apt/lists/*

RUN python3 -m venv /opt/jupyter && /opt/jupyter/bin/pip install --no-cache-dir jupyterlab notebook
ENV PATH=/opt/jupyter/bin:$PATH

WORKDIR /opt/tsloth
COPY package.json package-lock.json tsconfig.json ./
RUN npm ci
COPY bin ./bin
COPY kernel ./kernel
COPY lib ./lib
COPY kernelspec ./kernelspec
COPY kernels-cuda ./kernels-cuda
COPY assets ./assets
COPY notebooks ./notebooks
RUN npm run build && bash kernels-cuda/build.sh \
 && node bin/tsloth.js install --prefix /opt/jupyter

WORKDIR /workspace
EXPOSE 8888
CMD ["jupyter", "lab", "--ip=0.0.0.0", "--port=8888", "--allow-root", "--no-browser", "--ServerApp.default_kernel_name=tsloth", "--IdentityProvider.token="]
