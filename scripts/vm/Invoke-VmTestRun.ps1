<#
.SYNOPSIS
  One complete windows-driver run on a prepared test-signed VM: certificate, build, sign,
  install + load, npm test, logs, unload + uninstall (always).
.DESCRIPTION
  Used by .github/workflows/vm.yml and by hand (driver-sample/README.md). Needs an elevated
  prompt, test signing already on (Enable-TestSigning.ps1 + reboot), Visual Studio, nuget.exe and
  Node.js 20.
  UNVERIFIED: not run yet.
#>
[CmdletBinding()]
param(
    [ValidateSet('Debug', 'Release')] [string] $Configuration = 'Release',
    [string] $LogDirectory = '',
    [string] $PortGroupSid = '',
    [switch] $KeepInstalled
)
. (Join-Path $PSScriptRoot '_Common.ps1')
Assert-Administrator
if (-not $LogDirectory) { $LogDirectory = Join-Path (New-StateDirectory) 'logs' }
$platform = Get-HostPlatform

$bcd = (& bcdedit.exe /enum '{current}') -join "`n"
if ($bcd -notmatch 'testsigning\s+Yes') {
    Write-Warning 'bcdedit does not show "testsigning Yes": run Enable-TestSigning.ps1 and reboot (check skipped on non-English systems).'
}

$failure = $null
try {
    & (Join-Path $PSScriptRoot 'New-TestCertificate.ps1') | Out-Null
    & (Join-Path $PSScriptRoot 'Build-Driver.ps1') -Configuration $Configuration -Platform $platform | Out-Null
    $package = & (Join-Path $PSScriptRoot 'Sign-Driver.ps1') -Configuration $Configuration -Platform $platform
    & (Join-Path $PSScriptRoot 'Install-Driver.ps1') -PackageDirectory $package -PortGroupSid $PortGroupSid
    & (Join-Path $PSScriptRoot 'Invoke-DriverTests.ps1')
} catch {
    $failure = $_
    Write-Warning "Run failed: $($_.Exception.Message)"
} finally {
    & (Join-Path $PSScriptRoot 'Save-DriverLogs.ps1') -LogDirectory $LogDirectory
    if (-not $KeepInstalled) {
        try {
            & (Join-Path $PSScriptRoot 'Uninstall-Driver.ps1')
        } catch {
            Write-Warning "Uninstall failed: $($_.Exception.Message)"
        }
    }
}

if ($failure) { throw $failure }
Write-Host 'windows-driver run passed.'
