<#
.SYNOPSIS
  Unloads the filter and removes its driver package from the driver store.
  UNVERIFIED: not run yet. The pnputil output is parsed for the English labels
  "Published Name" / "Original Name"; on other display languages pass -PublishedName oemNN.inf.
#>
[CmdletBinding()]
param(
    [string] $PublishedName = ''
)
. (Join-Path $PSScriptRoot '_Common.ps1')
Assert-Administrator

if (Test-FilterLoaded) {
    Invoke-Native -FilePath 'fltmc.exe' -ArgumentList @('unload', $script:ServiceName) | Out-Null
}

$names = @()
if ($PublishedName) {
    $names = @($PublishedName)
} else {
    $published = $null
    foreach ($line in (& pnputil.exe /enum-drivers)) {
        if ($line -match '^\s*Published Name\s*:\s*(\S+)') { $published = $Matches[1] }
        elseif ($line -match '^\s*Original Name\s*:\s*fltsample\.inf\s*$' -and $published) { $names += $published }
    }
}

foreach ($name in $names) {
    Invoke-Native -FilePath 'pnputil.exe' -ArgumentList @('/delete-driver', $name, '/uninstall', '/force') -AllowedExitCodes @(0, 3010) | Out-Null
}

# Downlevel installs (or a failed package removal) leave the service behind.
if (Get-Service -Name $script:ServiceName -ErrorAction SilentlyContinue) {
    Invoke-Native -FilePath 'sc.exe' -ArgumentList @('delete', $script:ServiceName) -AllowedExitCodes @(0, 1072) | Out-Null
}
Write-Host "Uninstalled $($script:ServiceName) ($($names.Count) driver package(s) removed)."
