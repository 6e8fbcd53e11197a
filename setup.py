"""Packaging for lstm_pfd: everything is read from settings.ini (nbdev 2)."""
from configparser import ConfigParser
from pathlib import Path

import setuptools

assert setuptools.__version__ >= '36.2'
here = Path(__file__).parent
config = ConfigParser(delimiters=['='])
config.read(here / 'settings.ini', encoding='utf-8')
cfg = config['DEFAULT']

for k in ('version', 'description', 'keywords', 'author', 'author_email', 'license', 'git_url', 'lib_name', 'min_python'):
    assert k in cfg, f'settings.ini misses {k!r}'

licenses = {'apache2': ('Apache Software License 2.0', 'OSI Approved :: Apache Software License')}
statuses = ['1 - Planning', '2 - Pre-Alpha', '3 - Alpha', '4 - Beta', '5 - Production/Stable', '6 - Mature', '7 - Inactive']
py_versions = '3.10 3.11 3.12 3.13'.split()
min_python = cfg['min_python']
lic = licenses.get(cfg['license'].lower(), (cfg['license'], None))

requirements = cfg.get('requirements', '').split()
# every `<name>_requirements` key is an optional extra; `all` is every runtime extra together
extras = {k[:-len('_requirements')]: v.split() for k, v in cfg.items()
          if k.endswith('_requirements') and k != 'dev_requirements'}
extras['all'] = sorted({r for v in extras.values() for r in v})
extras['dev'] = sorted(set(extras['all']) | set(cfg.get('dev_requirements', '').split()))
scripts = cfg.get('console_scripts', '').split()

readme = here / 'README.md'
setuptools.setup(
    name=cfg['lib_name'],
    license=lic[0],
    classifiers=['Development Status :: ' + statuses[int(cfg['status'])],
                 'Intended Audience :: ' + cfg['audience'].title(),
                 'Natural Language :: ' + cfg['language'].title(),
                 'Topic :: Scientific/Engineering']
                + ['Programming Language :: Python :: ' + v for v in py_versions[py_versions.index(min_python):]]
                + (['License :: ' + lic[1]] if lic[1] else []),
    url=cfg['git_url'],
    packages=setuptools.find_packages(include=[cfg['lib_path'], cfg['lib_path'] + '.*']),
    include_package_data=True,
    install_requires=requirements,
    extras_require=extras,
    python_requires='>=' + min_python,
    long_description=readme.read_text(encoding='utf-8') if readme.exists() else cfg['description'],
    long_description_content_type='text/markdown',
    zip_safe=False,
    entry_points={'console_scripts': scripts, 'nbdev': [f'{cfg["lib_path"]}={cfg["lib_path"]}._modidx:d']},
    version=cfg['version'],
    description=cfg['description'],
    keywords=cfg['keywords'],
    author=cfg['author'],
    author_email=cfg['author_email'],
)
