<#
.SYNOPSIS
  Installs the signed package from Sign-Driver.ps1 and loads the filter (fltmc load).
.DESCRIPTION
  The INF is a primitive driver package (Windows 10 1903+): `pnputil /add-driver <inf> /install`
  adds it to the driver store and runs its DefaultInstall section; if the service does not exist
  afterwards, the documented InstallHinfSection route is tried. -PortGroupSid sets the opt-in
  Parameters\PortGroupSid value (e.g. S-1-5-32-545 lets the local Users group connect).
  UNVERIFIED: not run yet.
#>
[CmdletBinding()]
param(
    [string] $PackageDirectory = '',
    [string] $PortGroupSid = ''
)
. (Join-Path $PSScriptRoot '_Common.ps1')
Assert-Administrator
if (-not $PackageDirectory) { $PackageDirectory = Join-Path $script:StateDir "package-$(Get-HostPlatform)" }
$inf = Join-Path $PackageDirectory 'fltsample.inf'
if (-not (Test-Path $inf)) { throw "No ${inf}: run Sign-Driver.ps1 first." }

$serviceKey = "HKLM:\SYSTEM\CurrentControlSet\Services\$($script:ServiceName)"

# 3010 = installed, reboot requested (not needed for a demand-start filter).
Invoke-Native -FilePath 'pnputil.exe' -ArgumentList @('/add-driver', $inf, '/install') -AllowedExitCodes @(0, 3010) | Out-Null
if (-not (Test-Path $serviceKey)) {
    $section = if ((Get-HostPlatform) -eq 'ARM64') { 'DefaultInstall.NTarm64' } else { 'DefaultInstall.NTamd64' }
    Write-Host "Service not created by pnputil; trying InstallHinfSection $section"
    Start-Process -FilePath 'rundll32.exe' -ArgumentList "setupapi.dll,InstallHinfSection $section 132 $inf" -Wait
    if (-not (Test-Path $serviceKey)) { throw "Installation did not create the $($script:ServiceName) service." }
}

if ($PortGroupSid) {
    New-Item -Path "$serviceKey\Parameters" -Force | Out-Null
    Set-ItemProperty -Path "$serviceKey\Parameters" -Name 'PortGroupSid' -Value $PortGroupSid -Type String
    Write-Host "PortGroupSid = $PortGroupSid (read when the driver loads)"
}

# Reload so that a new binary or registry value takes effect.
if (Test-FilterLoaded) {
    Invoke-Native -FilePath 'fltmc.exe' -ArgumentList @('unload', $script:ServiceName) | Out-Null
}
Invoke-Native -FilePath 'fltmc.exe' -ArgumentList @('load', $script:ServiceName) | Out-Null
if (-not (Test-FilterLoaded)) { throw "$($script:ServiceName) is not listed by fltmc filters after loading." }

& fltmc.exe filters | Out-Host
& fltmc.exe instances -f $script:ServiceName | Out-Host
