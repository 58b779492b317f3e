<#
.SYNOPSIS
  Runs the TypeScript test suite against the loaded driver: `npm test` with
  FLTMGR_TEST_TARGET=windows-driver. Output is also written to -LogFile.
.DESCRIPTION
  Runs from an elevated prompt: the default port security admits administrators and SYSTEM only.
  UNVERIFIED: not run yet.
#>
[CmdletBinding()]
param(
    [string] $LogFile = '',
    [switch] $SkipNpmCi
)
. (Join-Path $PSScriptRoot '_Common.ps1')
if (-not (Test-FilterLoaded)) { throw "$($script:ServiceName) is not loaded: run Install-Driver.ps1 first." }
if (-not $LogFile) { $LogFile = Join-Path (New-StateDirectory) 'npm-test.log' }

Push-Location $script:RepoRoot
$previous = $env:FLTMGR_TEST_TARGET
try {
    $env:FLTMGR_TEST_TARGET = 'windows-driver'
    if (-not $SkipNpmCi) {
        Invoke-Native -FilePath 'npm.cmd' -ArgumentList @('ci') | Out-Null
    }
    Write-Host "> npm test (FLTMGR_TEST_TARGET=windows-driver), log: $LogFile"
    # cmd /c merges stderr into stdout without PowerShell turning stderr lines into errors.
    & cmd.exe /c "npm test 2>&1" | Tee-Object -FilePath $LogFile
    $code = $LASTEXITCODE
} finally {
    $env:FLTMGR_TEST_TARGET = $previous
    Pop-Location
}
if ($code -ne 0) { throw "npm test failed with exit code $code (log: $LogFile)" }
