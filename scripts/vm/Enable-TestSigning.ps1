<#
.SYNOPSIS
  Turns test signing on (or off) so that a driver signed with a self-made certificate can load.
.DESCRIPTION
  Runs `bcdedit /set testsigning on`. Takes effect after a REBOOT. Secure Boot must be off: on a
  Hyper-V VM, VM Settings > Security > clear "Enable Secure Boot" (the VM must be off to change
  it). Never do this on a machine you depend on: test signing lowers its protection.
  UNVERIFIED: not run yet.
.EXAMPLE
  .\Enable-TestSigning.ps1; Restart-Computer
#>
[CmdletBinding()]
param(
    [switch] $Disable
)
. (Join-Path $PSScriptRoot '_Common.ps1')
Assert-Administrator

if (-not $Disable) {
    $secureBoot = $false
    try {
        $secureBoot = Confirm-SecureBootUEFI
    } catch {
        # Legacy BIOS or no permission to read the UEFI variable: nothing to stop us then.
        Write-Verbose "Secure Boot state unknown: $($_.Exception.Message)"
    }
    if ($secureBoot) {
        throw 'Secure Boot is on, and Windows ignores testsigning while it is. Turn Secure Boot off in the VM firmware settings, then run this again.'
    }
}

$value = if ($Disable) { 'off' } else { 'on' }
Invoke-Native -FilePath 'bcdedit.exe' -ArgumentList @('/set', 'testsigning', $value) | Out-Null
Write-Host "Test signing set to '$value'. REBOOT for it to take effect (Restart-Computer)."
Write-Host "After the reboot the desktop shows 'Test Mode' in the lower right corner."
