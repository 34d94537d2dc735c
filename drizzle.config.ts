import { defineConfig } from 'drizzle-kit';

export default defineConfig({
  dialect: 'sqlite',
  schema: './src/meta/schema.ts',
  out: './drizzle',
});
