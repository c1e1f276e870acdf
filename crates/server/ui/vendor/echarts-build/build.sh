#!/bin/sh
# Rebuilds ../echarts.min.js, the custom ECharts 5.6.0 build the web UI loads as the global
# `echarts`. Needs Node and npm only to rebuild it; the server embeds the result and needs neither.
# Run from anywhere: it works in a scratch folder and copies the bundle back.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
work=${WORK:-/tmp/echarts-build}
mkdir -p "$work"
cp "$here/entry.js" "$work/entry.js"
cd "$work"
[ -f package.json ] || npm init -y >/dev/null
npm install --no-audit --no-fund echarts@5.6.0 zrender@5.6.1 esbuild@0.28.2
npx esbuild entry.js --bundle --format=iife --minify --target=es2019 \
  --legal-comments=none \
  --banner:js='/*! Apache ECharts 5.6.0 (custom build: see echarts-build/entry.js). Apache-2.0, see ECHARTS-LICENSE and ECHARTS-NOTICE. */' \
  --define:process.env.NODE_ENV='"production"' --outfile=echarts.min.js
cp echarts.min.js "$here/../echarts.min.js"
ls -l "$here/../echarts.min.js"
