// Module resolve hook (runs on the loader thread): a .ts URL that does not resolve retries as .js.
export async function resolve(specifier, context, nextResolve) {
  try {
    return await nextResolve(specifier, context);
  } catch (err) {
    if (/\.[cm]?ts$/.test(specifier)) {
      try {
        return await nextResolve(specifier.replace(/\.([cm]?)ts$/, '.$1js'), context);
      } catch {
        // report the original specifier
      }
    }
    throw err;
  }
}
