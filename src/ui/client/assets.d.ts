/** Modules esbuild bundles from non-TypeScript files. GraphQL documents: each `.graphql` file as its source text. */
declare module '*.graphql' {
  const source: string;
  export default source;
}

/** Stylesheets: esbuild bundles an imported `.css` file into the page's one stylesheet. */
declare module '*.css';
