// Status codes as the tests compare them, named from lib/status (the one table, checked against the Windows
// headers by test/simulator/status.test.ts) instead of hex literals.
import { Win32, hresultFromWin32, type Win32Name } from '../../lib/status';

/**
 * HRESULT_FROM_WIN32 of every Win32 code in lib/status, by name: what FilterError.hresult and the wire's result
 * frames carry (HR.ERROR_ACCESS_DENIED = 0x80070005). The ERROR_FLT_* codes are HRESULTs already and pass through.
 */
export const HR = Object.freeze(
  Object.fromEntries(Object.entries(Win32).map(([name, code]) => [name, hresultFromWin32(code)])),
) as { readonly [K in Win32Name]: number };
