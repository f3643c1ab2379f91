-- The Atlas resolves JavaScript/TypeScript imports the way bundlers and the TypeScript compiler do:
-- a workspace package by its package.json (`exports`, `module`, `main`), tsconfig.json/jsconfig.json
-- `paths` and `baseUrl`. What each such file says is kept with the file (JSON), so a re-index that
-- does not read it again still resolves with it.
ALTER TABLE atlas_files ADD COLUMN resolution TEXT;
