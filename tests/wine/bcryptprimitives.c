/* Wine 8 (Debian 12's) has no bcryptprimitives.dll, where Rust's standard library (1.78 and later)
 * takes its random bytes from on Windows (ProcessPrng). This stand-in gives it RtlGenRandom's, so
 * the Windows build of offload starts under Wine; scripts/check-windows builds it with MinGW into
 * the test Wine prefix. Windows itself has the real one. */
#include <windows.h>
#define SystemFunction036 NTAPI SystemFunction036
#include <ntsecapi.h>
#undef SystemFunction036

BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len) {
    while (len > 0) {
        ULONG chunk = len > 0x10000000 ? 0x10000000 : (ULONG)len;
        if (!RtlGenRandom(data, chunk)) return FALSE;
        data += chunk;
        len -= chunk;
    }
    return TRUE;
}
